import { withAdmin } from './global-setup.mjs';

export default async function globalTeardown() {
  const template = process.env.BROADSIDE_TEST_TEMPLATE;
  if (template) await withAdmin((c) => c.query(`DROP DATABASE IF EXISTS "${template}" WITH (FORCE)`));
}

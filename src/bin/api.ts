// The HTTP API only (`npm run start:api`).
import { boot } from '../boot.js';

await boot(['api']);

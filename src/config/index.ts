export { parseConfig, ConfigError, configVariables, redactUrl, type Config } from './schema.js';
export { withDevSecrets, type AppConfig } from './dev-secrets.js';

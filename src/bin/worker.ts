// A worker only (`npm run start:worker`); run as many as the relay can take, on any machine.
import { boot } from '../boot.js';

await boot(['worker']);

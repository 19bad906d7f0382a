// API and worker in one process: the single-machine setup (`npm start`).
import { boot } from '../boot.js';

await boot(['api', 'worker']);

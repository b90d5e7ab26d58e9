// Every test file runs on the project's default backend (wasm unless ENTK_BACKEND says otherwise).
import { initBackend } from '../src/backend/index.js';

await initBackend();

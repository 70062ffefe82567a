// The portal's entry point: the NHS.UK frontend's behaviour, then the
// router.

import { initAll } from '../vendor/nhsuk-frontend.min.js';
import { start } from './router.js';

document.body.classList.add('js-enabled', 'nhsuk-frontend-supported');
initAll();
start();

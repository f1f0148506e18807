#!/usr/bin/env node
// The CLI entry for `npx distill-lens`; the bundle is built by `npm run build`.
require('../dist/cli.js');

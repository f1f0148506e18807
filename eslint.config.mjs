// eslint with typescript-eslint's recommended rules, for src/, webview/, test/, bench/ and
// scripts/; prettier owns the formatting (npm run format), eslint the rest.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  {
    ignores: [
      'dist/**',
      'dist-test/**',
      'dist-vsix/**',
      '.package/**',
      '.test-cache/**',
      'test-results/**',
      'bench-results/**',
      'node_modules/**',
      'src/onnx/proto/onnx.js',
      'src/onnx/proto/onnx.d.ts',
    ],
  },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  {
    languageOptions: { globals: { ...globals.node } },
    rules: {
      // unused arguments named _x are intentional (callbacks with fixed signatures)
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
      // JSON documents and ONNX attributes are loosely typed at the edges
      '@typescript-eslint/no-explicit-any': 'off',
      // the tests' CommonJS helpers (require of the tools folder) are deliberate
      '@typescript-eslint/no-require-imports': 'off',
    },
  },
  { files: ['webview/**/*.ts'], languageOptions: { globals: { ...globals.browser } } },
);

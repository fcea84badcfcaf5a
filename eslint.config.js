// Lint for mistakes, not for style: prettier owns the layout (`make check` runs both).
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

export default tseslint.config(
  { ignores: ['dist/', 'node_modules/', 'clients/*/dist/'] },
  js.configs.recommended,
  ...tseslint.configs.recommended,
  prettier,
  {
    languageOptions: { globals: { console: 'readonly', process: 'readonly' } },
    rules: {
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrors: 'none' },
      ],
    },
  },
  // The live page's scripts run in the browser (plain modules, no build step); the globals they use, by name
  // (the `globals` package is not a dependency).
  {
    files: ['web/**/*.js'],
    languageOptions: {
      sourceType: 'module',
      globals: Object.fromEntries(
        [
          'window',
          'document',
          'location',
          'history',
          'sessionStorage',
          'fetch',
          'Headers',
          'URLSearchParams',
          'TextDecoderStream',
          'AbortController',
          'requestAnimationFrame',
          'setTimeout',
          'clearTimeout',
          'Option',
          'console',
        ].map((name) => [name, 'readonly']),
      ),
    },
  },
  // Tests read parsed JSON answers field by field; `any` there is the honest type.
  { files: ['test/**/*.ts', 'bench/**/*.ts'], rules: { '@typescript-eslint/no-explicit-any': 'off' } },
);

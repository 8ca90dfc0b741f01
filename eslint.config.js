// @ts-check
import js from '@eslint/js';
import tseslint from 'typescript-eslint';

/** What a page's script may use besides the language's own globals. */
const BROWSER_GLOBALS = [
  'AbortController',
  'AbortSignal',
  'clearInterval',
  'clearTimeout',
  'console',
  'CustomEvent',
  'document',
  'Event',
  'EventSource',
  'fetch',
  'FormData',
  'Headers',
  'HTMLElement',
  'location',
  'navigator',
  'Node',
  'Option',
  'performance',
  'queueMicrotask',
  'requestAnimationFrame',
  'Response',
  'setInterval',
  'sessionStorage',
  'setTimeout',
  'URL',
  'URLSearchParams',
  'window',
];

export default tseslint.config(
  {
    ignores: ['node_modules/', '.data/', 'dist/', 'coverage/', 'test-artifacts/'],
  },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: {
      parserOptions: {
        projectService: { allowDefaultProject: ['bin/*.mjs'] },
        tsconfigRootDir: import.meta.dirname,
      },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': [
        'error',
        { checksVoidReturn: { arguments: false } },
      ],
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_' },
      ],
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
    },
  },
  {
    files: ['**/*.js', '**/*.mjs'],
    extends: [tseslint.configs.disableTypeChecked],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
  {
    // The dashboard: plain ES modules run by the browser as they are, with its globals, not Node's.
    files: ['src/mare/web/**/*.js'],
    languageOptions: {
      sourceType: 'module',
      globals: {
        process: 'off',
        ...Object.fromEntries(BROWSER_GLOBALS.map((name) => [name, 'readonly'])),
      },
    },
  },
);

import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import globals from 'globals';

export default tseslint.config(
  // The guide's example is the guide's code, run as it is written.
  { ignores: ['dist/', 'node_modules/', 'test/fixtures/guide-usage-example.cjs', 'test/fixtures/.guide-run.cjs', 'test/fixtures/*.bundle.js'] },
  js.configs.recommended,
  {
    files: ['src/**/*.ts'],
    extends: [...tseslint.configs.strictTypeChecked],
    languageOptions: { parserOptions: { project: './tsconfig.json', tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/restrict-template-expressions': ['error', { allowNumber: true }],
    },
  },
  {
    files: ['tsup.config.ts'],
    extends: [...tseslint.configs.recommended],
  },
  {
    files: ['**/*.mjs', '**/*.cjs', '**/*.jsx'],
    languageOptions: {
      globals: { ...globals.node, ...globals.browser },
      parserOptions: { ecmaFeatures: { jsx: true } },
    },
  },
  {
    // Core ESLint does not see a component used as <Component />.
    files: ['**/*.jsx'],
    rules: { 'no-unused-vars': ['error', { varsIgnorePattern: '^[A-Z]' }] },
  },
);

// `npm run lint` (run by `npm test`): neostandard (standard style, TypeScript-aware) with a line length.
import globals from 'globals'
import neostandard from 'neostandard'

export default [
  ...neostandard({
    ts: true,
    ignores: ['src/graphql/generated/**', 'node_modules/**', 'web/dist/**']
  }),
  {
    rules: {
      '@stylistic/max-len': ['error', {
        code: 140,
        ignoreUrls: true,
        ignoreRegExpLiterals: true,
        // Messages are written to be read whole (and searched for): a long one may run on.
        ignoreStrings: true,
        ignoreTemplateLiterals: true
      }],
      // TypeScript reports real redeclarations itself; a TypeBox schema and its Static type share a name on purpose.
      '@typescript-eslint/no-redeclare': 'off',
      // `void promise` says "not awaited, on purpose".
      'no-void': ['error', { allowAsStatement: true }]
    }
  },
  {
    // The field app runs in the browser (its service worker too).
    files: ['web/src/**/*.{ts,tsx}'],
    languageOptions: { globals: { ...globals.browser, ...globals.serviceworker } }
  },
  {
    // The self-hosted GraphiQL page's script runs in the browser.
    files: ['src/graphiql/public/**/*.js'],
    languageOptions: { globals: globals.browser }
  }
]

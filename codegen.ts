// graphql-codegen: TypeScript types for the resolvers and results, generated from the SDL in schema/.
// `npm run codegen` writes src/graphql/generated/schema-types.ts (committed); `npm run codegen:check`
// (run by `npm test`) fails when that file is stale. Relative paths in `contextType`, `mappers` and
// `scalars` are relative to the generated file.
import type { CodegenConfig } from '@graphql-codegen/cli'

const config: CodegenConfig = {
  schema: ['schema/*.graphql', 'src/**/*.graphql'],
  overwrite: true,
  generates: {
    'src/graphql/generated/schema-types.ts': {
      plugins: [
        {
          add: {
            content: [
              '// GENERATED FILE, DO NOT EDIT: made from schema/*.graphql by `npm run codegen` (codegen.ts).',
              '// `npm test` fails when it is stale (`npm run codegen:check`).',
              '/* eslint-disable */'
            ]
          }
        },
        'typescript',
        'typescript-resolvers'
      ],
      config: {
        // Runs under Node's type stripping (erasableSyntaxOnly, verbatimModuleSyntax): no enums, type-only imports.
        enumsAsTypes: true,
        useTypeImports: true,
        // Every custom scalar must be mapped here (else codegen fails), so none silently becomes `any`.
        strictScalars: true,
        scalars: {
          Upload: { input: '../upload.ts#Upload', output: 'never' },
          DateTime: { input: 'Date', output: 'Date' }
        },
        // What every resolver may use (mercurius passes MercuriusContext, which extends it).
        contextType: '../context.ts#AppContext'
        // No `mappers`: the domain types (e.g. `Identification` in src/identification/types.ts) are
        // the result shapes, so a resolver's return value is checked against the SDL type itself. A
        // mapper would tell codegen to trust field resolvers to convert, turning that check off.
      }
    }
  }
}

export default config

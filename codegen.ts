// graphql-codegen: TypeScript types generated from the SDL, the same files the server loads
// (src/graphql/schema.ts): every *.graphql under src/. Three outputs, all committed:
// - src/graphql/generated/schema-types.ts: the resolvers' and results' types;
// - src/generated/schema-enums.ts: the enums alone, `ErrorCode` among them (src/errors.ts);
// - web/src/generated/schema-types.ts and api-types.ts: the field app's enums and inputs (`ErrorCode` among
//   them), and its operations' variables and results (strings marked `/* GraphQL */` in web/src/).
// `npm run codegen` writes them; `npm run codegen:check` (run by `npm test`) fails when either is stale.
// Relative paths in `contextType`, `mappers` and `scalars` are relative to the generated file.
import type { CodegenConfig } from '@graphql-codegen/cli'

const header = (from: string): string[] => [
  `// GENERATED FILE, DO NOT EDIT: made from ${from} by \`npm run codegen\` (codegen.ts).`,
  '// `npm test` fails when it is stale (`npm run codegen:check`).',
  '/* eslint-disable */'
]

// The field app's generated types: bundled by esbuild and checked by tsc with verbatimModuleSyntax (string
// unions, type-only imports); scalars as they travel in JSON (DateTime) and in the multipart request (Upload).
const fieldAppTypes = {
  enumsAsTypes: true,
  useTypeImports: true,
  strictScalars: true,
  scalars: { DateTime: 'string', Upload: 'Blob' }
}

const config: CodegenConfig = {
  schema: 'src/**/*.graphql',
  overwrite: true,
  generates: {
    'src/graphql/generated/schema-types.ts': {
      plugins: [
        { add: { content: header('src/**/*.graphql') } },
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
    },
    // The same enums as bare string unions, importing nothing: what the kernel takes from the schema (src/errors.ts
    // its ErrorCode) without a type-level cycle through the resolvers' context.
    'src/generated/schema-enums.ts': {
      plugins: [
        { add: { content: header('src/**/*.graphql') } },
        'typescript'
      ],
      config: { enumsAsTypes: true, onlyEnums: true }
    },
    // typescript-operations 6 writes the enums and inputs an operation uses itself, so the schema's types
    // (ErrorCode among them, which no operation names) go to a file of their own that it imports.
    'web/src/generated/schema-types.ts': {
      plugins: [
        { add: { content: header('src/**/*.graphql') } },
        'typescript'
      ],
      config: {
        ...fieldAppTypes,
        // Enums, inputs and scalars only: the result types come from the operations (api-types.ts).
        onlyOperationTypes: true
      }
    },
    'web/src/generated/api-types.ts': {
      // The generated files themselves are not documents: only the app's own strings.
      documents: ['web/src/**/*.ts', 'web/src/**/*.tsx', '!web/src/generated/**'],
      plugins: [
        { add: { content: header('the SDL and the `/* GraphQL */` strings in web/src/') } },
        'typescript-operations'
      ],
      config: {
        ...fieldAppTypes,
        importSchemaTypesFrom: 'web/src/generated/schema-types.ts',
        namespacedImportName: 'Types',
        importExtension: '.ts' // as every import in the app (allowImportingTsExtensions)
      }
    }
  }
}

export default config

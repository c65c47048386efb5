// `npm run check:deps` (run by `npm test`): no import cycles in src/, type-only imports included
// (a type-level cycle means a type lives in the wrong module), and no module that nothing imports.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Put the shared type or function in the module its concept belongs to.',
      from: {},
      to: { circular: true }
    },
    {
      name: 'no-orphans',
      severity: 'error',
      comment: 'A module nothing imports is dead code (entry points and worker-thread scripts excepted).',
      from: { orphan: true, pathNot: ['^src/server\\.ts$', '^src/cli/', '-worker\\.ts$', '^src/graphiql/public/', '\\.d\\.ts$'] },
      to: {}
    }
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] }
  }
}

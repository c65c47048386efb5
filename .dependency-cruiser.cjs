// `npm run check:deps` (run by `npm test`): no import cycles in src/, type-only imports included
// (a type-level cycle means a type lives in the wrong module), and no module that nothing imports.
// And the layers, floor by floor (each may import its own floor and those below):
//   kernel      errors (and the enums generated from the SDL), config support, logger, HTTP helpers, database,
//               workers, redis, the metrics registry
//   domain      image, callers, limits, azure, vision
//   flow        identification (the flow, its events, app.identification)
//   api core    graphql (the plugin, registry, context, scalars, upload, rules): it knows no feature
//   features    identify, history, thumbnails, webhooks, subscriptions, graphiql, webapp, health
//   composition app.ts, server.ts, config.ts, cli/: they alone see everything
// A feature reaches another only through its decorator, typed by the other's public.ts (type-only).
const KERNEL = '^src/(errors|config-support|logger|security-headers|storable-text)\\.ts$|^src/(http|database|workers|redis|generated)/|^src/metrics/(registry|plugin|config)\\.ts$'
const DOMAIN = '^src/(image|callers|limits|azure|vision)/'
const FEATURES = '^src/(identify|history|thumbnails|webhooks|subscriptions|bulk|graphiql|webapp)/|^src/health\\.ts$'
const TOP = '^src/(app|server|config|server-config|migrations|services)\\.ts$|^src/cli/'
const LAYERS = 'error'

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
    },
    {
      name: 'no-climb-to-composition',
      severity: LAYERS,
      comment: 'Only app.ts, server.ts and cli/ compose; an area gets its config slice as an option.',
      from: { path: '^src/', pathNot: TOP },
      to: { path: TOP }
    },
    {
      name: 'kernel-is-the-floor',
      severity: LAYERS,
      comment: 'The kernel imports only the kernel.',
      from: { path: KERNEL },
      to: { path: '^src/', pathNot: KERNEL }
    },
    {
      name: 'domain-stays-low',
      severity: LAYERS,
      comment: 'Image, callers, limits, azure and vision know nothing of the flow, the API or the features.',
      from: { path: DOMAIN },
      to: { path: '^src/(identification|graphql)/|' + FEATURES }
    },
    {
      name: 'identification-below-api',
      severity: LAYERS,
      comment: 'The flow serves every entry point: it knows no API and no feature.',
      from: { path: '^src/identification/' },
      to: { path: '^src/graphql/|' + FEATURES }
    },
    {
      name: 'graphql-knows-no-feature',
      severity: LAYERS,
      comment: 'Features register their SDL and resolvers in app.graphqlRegistry.',
      from: { path: '^src/graphql/' },
      to: { path: FEATURES + '|^src/(identification|vision|azure|limits|image)/' }
    },
    {
      name: 'features-apart',
      severity: LAYERS,
      comment: 'Another feature only through its decorator; its types from its public.ts, type-only.',
      from: { path: '^src/([^/]+)/', pathNot: TOP },
      to: { path: FEATURES, pathNot: ['^src/$1/', '^src/[^/]+/public\\.ts$'] }
    },
    {
      name: 'public-is-types-only',
      severity: LAYERS,
      comment: 'A public.ts holds the types of a decorator; importing it costs nothing at run time.',
      from: { path: FEATURES },
      to: { path: '^src/[^/]+/public\\.ts$', dependencyTypesNot: ['type-only'] }
    }
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { extensions: ['.ts', '.js'] }
  }
}

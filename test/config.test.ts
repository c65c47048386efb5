// Configuration from the environment (src/config.ts and the areas' config modules): the whole
// default Config, what NODE_ENV=production changes, every refusal (with the variable it names),
// TRUST_PROXY's forms, API_KEY_HASHES(_FILE), the GPT4V_* aliases and IMAGE_CONCURRENCY's default.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import t from 'tap'
import type { Test } from 'tap'
import { loadConfig, ConfigError, type Config } from '../src/config.ts'
import { sha256Hex } from '../src/callers/api-keys.ts'

const MiB = 1024 * 1024
const HASH = sha256Hex('agv_test-key')
const OTHER_HASH = sha256Hex('agv_other-key')
const TENANT = '11111111-2222-3333-4444-555555555555'

function refused (t: Test, env: NodeJS.ProcessEnv, message: RegExp | string, what = JSON.stringify(env)): void {
  t.throws(() => loadConfig(env), { name: 'ConfigError', message }, what)
}

t.test('the defaults, in development', async t => {
  const expected: Config = {
    server: {
      port: 3000,
      host: '127.0.0.1',
      logLevel: 'info',
      production: false,
      requestTimeoutMs: 120_000,
      shutdownGraceMs: 25_000,
      trustProxy: false,
      corsOrigins: true
    },
    graphql: {
      graphiql: true,
      introspection: true,
      maxQueryDepth: 15,
      maxQueryFields: 500,
      maxQueryTokens: 2_000,
      maxBodyBytes: 100 * 1024,
      maxUploadBytes: 20 * MiB,
      uploadIdleTimeoutMs: 5_000,
      uploadMinBytesPerSecond: 1024
    },
    limits: {
      rates: { ratePerMinute: 30, operationsPerMinute: 600 },
      overload: {
        maxConcurrency: 16,
        maxConcurrencyPerCaller: 4,
        queueSize: 64,
        queueTimeoutMs: 30_000,
        uploadBytesInFlight: 256 * MiB,
        uploadBytesInFlightPerCaller: 96 * MiB,
        maxEventLoopDelayMs: 1_000,
        maxHeapUsedBytes: 0,
        maxRssBytes: 0
      }
    },
    redis: { url: null, ca: null },
    images: {
      detail: 'adaptive',
      adaptiveMinConfidence: 'MEDIUM',
      maxInputPixels: 50_000_000,
      maxSide: 12_000,
      maxAspectRatio: 20,
      maxDecodeBytes: 48 * MiB,
      memoryBudgetBytes: 96 * MiB,
      jpegQuality: 85,
      lowOriginalMaxBytes: 256 * 1024,
      concurrency: Math.min(availableParallelism(), 2) // 96 MiB ÷ 48 MiB
    },
    vision: {
      backend: 'simulated', language: 'ru', timeoutMs: 60_000, attemptTimeoutMs: null, maxTokens: 800, breakerFailures: 3, breakerCoolDownMs: 10_000
    },
    azure: null,
    azureIdentity: { tokenTimeoutMs: 10_000 },
    callers: { modes: [], entra: null, apiKeys: [] },
    metrics: { token: null },
    database: { dialect: 'sqlite', file: join(process.cwd(), 'data', 'history.db') },
    history: {
      enabled: true,
      retentionDays: 365,
      bufferSize: 10_000,
      resultCache: { ttlSeconds: 604_800, scope: 'caller' },
      prices: null,
      batchPrices: null
    },
    thumbnails: { signingKey: null, urlTtlSeconds: 900, skipAboveUtilisation: 0.8, priority: 'low' },
    webApp: { enabled: true, entra: null },
    subscriptions: {
      perCaller: 5,
      max: 10_000,
      maxPayloadBytes: 65_536,
      initTimeoutMs: 10_000,
      idleTimeoutMs: 60_000,
      keepAliveMs: 30_000,
      messagesPerSecond: 10,
      maxQueuedBytes: 1_048_576
    },
    webhooks: {
      retryScheduleMs: [0, 5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 50_400_000, 72_000_000, 86_400_000],
      timeoutMs: 15_000,
      leaseMs: 35_000,
      disableAfterFailingMs: 5 * 86_400_000,
      rotationOverlapMs: 86_400_000,
      concurrency: 32,
      concurrencyPerEndpoint: 4,
      pollMs: 1000,
      thumbnailWaitMs: 2000,
      maxEndpoints: 20,
      allowLoopback: false,
      publicBaseUrl: null
    },
    bulk: {
      dir: resolve('./data/bulk'),
      maxArchiveBytes: 2 * 1024 ** 3,
      maxItems: 10_000,
      maxExpandedBytes: 8 * 1024 ** 3,
      maxCompressionRatio: 20,
      maxReceivingBytes: 8 * 1024 ** 3,
      minFreeBytes: 1024 ** 3,
      maxConcurrency: 4,
      prepareConcurrency: 1,
      pollIntervalMs: 60_000,
      maxActiveJobsPerCaller: 2,
      globalBatch: null,
      batchPrices: null
    }
  }
  t.strictSame(loadConfig({}), expected)
  t.strictSame(loadConfig({ NODE_ENV: 'development' }), expected, 'NODE_ENV=development is the default')
  t.strictSame(loadConfig({ NODE_ENV: 'test' }), expected, 'anything but production is not production')
  t.strictSame(loadConfig({ PORT: '', HOST: '', LOG_LEVEL: '', AUTH_MODE: '', CORS_ORIGINS: '', GRAPHIQL: '' }), expected, 'an empty value is unset')
  t.strictSame(loadConfig({ SOMETHING_ELSE: 'x', PATH: '/usr/bin' }), expected, 'other variables are ignored')
})

t.test('NODE_ENV=production', async t => {
  refused(t, { NODE_ENV: 'production' }, /AUTH_MODE=none with NODE_ENV=production .* ALLOW_ANONYMOUS=true/)
  refused(t, { NODE_ENV: 'production', AUTH_MODE: 'none', ALLOW_ANONYMOUS: 'false' }, /ALLOW_ANONYMOUS/)

  const development = loadConfig({})
  const production = loadConfig({ NODE_ENV: 'production', ALLOW_ANONYMOUS: 'true' })
  t.strictSame(production, {
    ...development,
    server: { ...development.server, production: true, corsOrigins: [] },
    graphql: { ...development.graphql, graphiql: false, introspection: false }
  }, 'production, GraphiQL, introspection and CORS change; nothing else')

  const opened = loadConfig({ NODE_ENV: 'production', ALLOW_ANONYMOUS: 'true', GRAPHIQL: 'true', GRAPHQL_INTROSPECTION: 'true', CORS_ORIGINS: 'https://a.example, https://b.example,' })
  t.equal(opened.graphql.graphiql, true)
  t.equal(opened.graphql.introspection, true)
  t.strictSame(opened.server.corsOrigins, ['https://a.example', 'https://b.example'])
  const closed = loadConfig({ GRAPHIQL: 'false', GRAPHQL_INTROSPECTION: 'false', CORS_ORIGINS: ' , ' })
  t.equal(closed.graphql.graphiql, false, 'GRAPHIQL=false in development')
  t.equal(closed.graphql.introspection, false)
  t.strictSame(closed.server.corsOrigins, [], 'a blank list: no cross-origin access')
})

t.test('values are read and converted', async t => {
  const c = loadConfig({
    PORT: '0',
    HOST: '::',
    LOG_LEVEL: 'debug',
    MAX_UPLOAD_BYTES: '1024',
    IMAGE_MAX_ASPECT_RATIO: '2.5',
    VISION_IMAGE_DETAIL: 'low',
    VISION_LANGUAGE: 'pt-BR',
    VISION_TIMEOUT_MS: '100',
    VISION_MAX_TOKENS: '16384',
    RATE_LIMIT_PER_MINUTE: '0',
    REDIS_URL: 'rediss://cache.example:6380',
    PRESSURE_MAX_HEAP_USED_BYTES: String(512 * MiB),
    METRICS_TOKEN: '0123456789abcdef'
  })
  t.match(c, {
    server: { port: 0, host: '::', logLevel: 'debug' },
    graphql: { maxUploadBytes: 1024 },
    images: { maxAspectRatio: 2.5, detail: 'low' },
    vision: { language: 'pt-BR', timeoutMs: 100, maxTokens: 16_384 },
    limits: { rates: { ratePerMinute: 0 }, overload: { maxHeapUsedBytes: 512 * MiB } },
    redis: { url: 'rediss://cache.example:6380', ca: null },
    metrics: { token: '0123456789abcdef' }
  })
})

t.test('out-of-range and malformed values are refused, naming the variable', async t => {
  const cases: Array<[NodeJS.ProcessEnv, string]> = [
    [{ PORT: '65536' }, 'env/PORT must be <= 65535'],
    [{ PORT: '-1' }, 'env/PORT must be >= 0'],
    [{ PORT: 'http' }, 'env/PORT must be integer'],
    [{ PORT: '3.5' }, 'env/PORT must be integer'],
    [{ LOG_LEVEL: 'loud' }, 'env/LOG_LEVEL must be equal to one of the allowed values'],
    [{ GRAPHIQL: 'maybe' }, 'env/GRAPHIQL must be boolean'],
    [{ MAX_UPLOAD_BYTES: '10' }, 'env/MAX_UPLOAD_BYTES must be >= 1024'],
    [{ MAX_UPLOAD_BYTES: String(100 * MiB + 1) }, `env/MAX_UPLOAD_BYTES must be <= ${100 * MiB}`],
    [{ REQUEST_TIMEOUT_MS: '999' }, 'env/REQUEST_TIMEOUT_MS must be >= 1000'],
    [{ UPLOAD_IDLE_TIMEOUT_MS: '499' }, 'env/UPLOAD_IDLE_TIMEOUT_MS must be >= 500'],
    [{ UPLOAD_MIN_BYTES_PER_SECOND: '-1' }, 'env/UPLOAD_MIN_BYTES_PER_SECOND must be >= 0'],
    [{ UPLOAD_BYTES_IN_FLIGHT: String(MiB - 1) }, `env/UPLOAD_BYTES_IN_FLIGHT must be >= ${MiB}`],
    [{ UPLOAD_BYTES_IN_FLIGHT_PER_CALLER: '65535' }, 'env/UPLOAD_BYTES_IN_FLIGHT_PER_CALLER must be >= 65536'],
    [{ SHUTDOWN_GRACE_MS: '600001' }, 'env/SHUTDOWN_GRACE_MS must be <= 600000'],
    [{ VISION_BACKEND: 'gcp' }, 'env/VISION_BACKEND must be equal to one of the allowed values'],
    [{ VISION_IMAGE_DETAIL: 'huge' }, 'env/VISION_IMAGE_DETAIL must be equal to one of the allowed values'],
    [{ VISION_LANGUAGE: 'english!' }, 'env/VISION_LANGUAGE must match pattern'],
    [{ VISION_TIMEOUT_MS: '99' }, 'env/VISION_TIMEOUT_MS must be >= 100'],
    [{ VISION_MAX_TOKENS: '16385' }, 'env/VISION_MAX_TOKENS must be <= 16384'],
    [{ IMAGE_MAX_INPUT_PIXELS: '5' }, 'env/IMAGE_MAX_INPUT_PIXELS must be >= 1000000'],
    [{ IMAGE_MAX_SIDE: '100' }, 'env/IMAGE_MAX_SIDE must be >= 2048'],
    [{ IMAGE_MAX_ASPECT_RATIO: '0.5' }, 'env/IMAGE_MAX_ASPECT_RATIO must be >= 1'],
    [{ IMAGE_MAX_DECODE_BYTES: '1000' }, `env/IMAGE_MAX_DECODE_BYTES must be >= ${8 * MiB}`],
    [{ IMAGE_MEMORY_BUDGET_BYTES: '1000' }, `env/IMAGE_MEMORY_BUDGET_BYTES must be >= ${8 * MiB}`],
    [{ IMAGE_JPEG_QUALITY: '101' }, 'env/IMAGE_JPEG_QUALITY must be <= 100'],
    [{ IMAGE_CONCURRENCY: '0' }, 'env/IMAGE_CONCURRENCY must be >= 1'],
    [{ IMAGE_LOW_ORIGINAL_MAX_BYTES: '-1' }, 'env/IMAGE_LOW_ORIGINAL_MAX_BYTES must be >= 0'],
    [{ IMAGE_LOW_ORIGINAL_MAX_BYTES: String(21 * MiB) }, 'env/IMAGE_LOW_ORIGINAL_MAX_BYTES must be <= 20971520'],
    [{ AZURE_OPENAI_ENDPOINT: 'ftp://x.example' }, 'env/AZURE_OPENAI_ENDPOINT must match pattern'],
    [{ AZURE_OPENAI_DEPLOYMENT: 'bad name!' }, 'env/AZURE_OPENAI_DEPLOYMENT must match pattern'],
    [{ AZURE_OPENAI_API_VERSION: 'latest' }, 'env/AZURE_OPENAI_API_VERSION must match pattern'],
    [{ AZURE_OPENAI_SCOPE: 'https://cognitiveservices.azure.com' }, 'env/AZURE_OPENAI_SCOPE must match pattern'],
    [{ AZURE_TOKEN_TIMEOUT_MS: '99' }, 'env/AZURE_TOKEN_TIMEOUT_MS must be >= 100'],
    [{ TRUST_PROXY: 'yes please' }, 'env/TRUST_PROXY must match pattern'],
    [{ AUTH_MODE: 'password' }, 'env/AUTH_MODE must match pattern'],
    [{ AUTH_MODE: 'none,apikey' }, 'env/AUTH_MODE must match pattern'],
    [{ ALLOW_ANONYMOUS: 'sure' }, 'env/ALLOW_ANONYMOUS must be boolean'],
    [{ ENTRA_TENANT_ID: 'not a tenant' }, 'env/ENTRA_TENANT_ID must match pattern'],
    [{ ENTRA_JWKS_URI: 'ldap://keys.example' }, 'env/ENTRA_JWKS_URI must match pattern'],
    [{ ENTRA_JWKS_TIMEOUT_MS: '60001' }, 'env/ENTRA_JWKS_TIMEOUT_MS must be <= 60000'],
    [{ RATE_LIMIT_PER_MINUTE: '100001' }, 'env/RATE_LIMIT_PER_MINUTE must be <= 100000'],
    [{ GRAPHQL_RATE_LIMIT_PER_MINUTE: '-1' }, 'env/GRAPHQL_RATE_LIMIT_PER_MINUTE must be >= 0'],
    [{ REDIS_URL: 'http://cache.example' }, 'env/REDIS_URL must match pattern'],
    [{ GRAPHQL_INTROSPECTION: 'perhaps' }, 'env/GRAPHQL_INTROSPECTION must be boolean'],
    [{ GRAPHQL_MAX_DEPTH: '7' }, 'env/GRAPHQL_MAX_DEPTH must be >= 8'],
    [{ GRAPHQL_MAX_FIELDS: '49' }, 'env/GRAPHQL_MAX_FIELDS must be >= 50'],
    [{ GRAPHQL_MAX_TOKENS: '100001' }, 'env/GRAPHQL_MAX_TOKENS must be <= 100000'],
    [{ GRAPHQL_MAX_BODY_BYTES: '1023' }, 'env/GRAPHQL_MAX_BODY_BYTES must be >= 1024'],
    [{ VISION_MAX_CONCURRENCY: '0' }, 'env/VISION_MAX_CONCURRENCY must be >= 1'],
    [{ VISION_MAX_CONCURRENCY_PER_CALLER: '1025' }, 'env/VISION_MAX_CONCURRENCY_PER_CALLER must be <= 1024'],
    [{ VISION_QUEUE_SIZE: '10001' }, 'env/VISION_QUEUE_SIZE must be <= 10000'],
    [{ VISION_QUEUE_TIMEOUT_MS: '99' }, 'env/VISION_QUEUE_TIMEOUT_MS must be >= 100'],
    [{ PRESSURE_MAX_EVENT_LOOP_DELAY_MS: '-1' }, 'env/PRESSURE_MAX_EVENT_LOOP_DELAY_MS must be >= 0'],
    [{ PRESSURE_MAX_HEAP_USED_BYTES: 'lots' }, 'env/PRESSURE_MAX_HEAP_USED_BYTES must be integer'],
    [{ PRESSURE_MAX_RSS_BYTES: '-1' }, 'env/PRESSURE_MAX_RSS_BYTES must be >= 0'],
    [{ METRICS_TOKEN: 'short' }, 'env/METRICS_TOKEN must NOT have fewer than 16 characters']
  ]
  for (const [env, message] of cases) {
    t.throws(() => loadConfig(env), { name: 'ConfigError', message: `invalid configuration: ${message}` }, JSON.stringify(env))
  }
  // Every variable at fault is named, in one message.
  refused(t, { PORT: '70000', METRICS_TOKEN: 'short' }, /^invalid configuration: (?=.*env\/PORT must be <= 65535)(?=.*env\/METRICS_TOKEN must NOT have fewer than 16 characters)/)
  t.ok(new ConfigError('x') instanceof Error)
})

t.test('the vision backend and its Azure deployment', async t => {
  refused(t, { VISION_BACKEND: 'azure' }, 'invalid configuration: VISION_BACKEND=azure needs AZURE_OPENAI_ENDPOINT (or GPT4V_ENDPOINT) or AZURE_OPENAI_BACKENDS')
  refused(t, { AZURE_OPENAI_ENDPOINT: 'https://x.openai.azure.com' }, 'invalid configuration: AZURE_OPENAI_DEPLOYMENT (or GPT4V_DEPLOYMENT) is required with an Azure endpoint')

  const { vision, azure } = loadConfig({ AZURE_OPENAI_ENDPOINT: 'https://x.openai.azure.com//', AZURE_OPENAI_DEPLOYMENT: 'gpt-4o' })
  t.strictSame({ vision, azure }, {
    vision: {
      backend: 'azure',
      language: 'ru',
      timeoutMs: 60_000,
      attemptTimeoutMs: null,
      maxTokens: 800,
      breakerFailures: 3,
      breakerCoolDownMs: 10_000
    },
    azure: {
      backends: [{ name: 'default', endpoint: 'https://x.openai.azure.com', deployment: 'gpt-4o', apiVersion: 'v1', priority: 0, weight: 1 }],
      scope: 'https://cognitiveservices.azure.com/.default',
      tokenTimeoutMs: 10_000
    }
  }, 'an endpoint selects azure; trailing slashes dropped')
  t.match(loadConfig({ AZURE_OPENAI_ENDPOINT: 'https://x.openai.azure.com', AZURE_OPENAI_DEPLOYMENT: 'd', AZURE_OPENAI_API_VERSION: '2024-10-21', AZURE_OPENAI_SCOPE: 'api://agrivision/.default', AZURE_TOKEN_TIMEOUT_MS: '500' }).azure,
    { backends: [{ apiVersion: '2024-10-21' }], scope: 'api://agrivision/.default', tokenTimeoutMs: 500 })
  // Structured outputs (json_schema) need the v1 API or a dated version from 2024-10-21.
  const deployment = { AZURE_OPENAI_ENDPOINT: 'https://x.openai.azure.com', AZURE_OPENAI_DEPLOYMENT: 'd' }
  for (const old of ['2023-12-01-preview', '2024-02-01', '2024-06-01', '2024-08-01-preview', '2024-10-01-preview']) {
    refused(t, { ...deployment, AZURE_OPENAI_API_VERSION: old },
      `invalid configuration: AZURE_OPENAI_API_VERSION=${old} has no structured outputs (json_schema); use v1 (the default) or a dated version from 2024-10-21`)
  }
  refused(t, { AZURE_OPENAI_API_VERSION: '2024-02-01' }, /AZURE_OPENAI_API_VERSION=2024-02-01/, 'also when the azure backend is unused')
  for (const recent of ['v1', '2024-10-21', '2024-12-01-preview', '2025-04-01-preview']) {
    t.equal(loadConfig({ ...deployment, AZURE_OPENAI_API_VERSION: recent }).azure?.backends[0]?.apiVersion, recent, `${recent} is accepted`)
  }
  t.strictSame(loadConfig({ VISION_BACKEND: 'simulated', AZURE_OPENAI_ENDPOINT: 'https://x.openai.azure.com' }).azure, null,
    'VISION_BACKEND=simulated wins over an endpoint (no deployment needed)')

  const https = /^invalid configuration: AZURE_OPENAI_ENDPOINT must be an https:\/\/ URL \(plain http only on loopback\)$/
  refused(t, { AZURE_OPENAI_ENDPOINT: 'http://x.openai.azure.com', AZURE_OPENAI_DEPLOYMENT: 'gpt-4o' }, https)
  refused(t, { VISION_BACKEND: 'simulated', AZURE_OPENAI_ENDPOINT: 'http://x.openai.azure.com' }, https, 'the https rule holds even when the endpoint is unused')
  for (const origin of ['http://127.0.0.1:8080', 'http://localhost:8080', 'http://[::1]:8080']) {
    t.equal(loadConfig({ AZURE_OPENAI_ENDPOINT: origin, AZURE_OPENAI_DEPLOYMENT: 'gpt-4o' }).azure?.backends[0]?.endpoint, origin, `plain http on loopback: ${origin}`)
  }
})

t.test('the GPT4V_* aliases', async t => {
  const aliased = loadConfig({ GPT4V_ENDPOINT: 'https://old.openai.azure.com/', GPT4V_DEPLOYMENT: 'old' })
  t.equal(aliased.vision.backend, 'azure')
  t.match(aliased.azure?.backends[0], { endpoint: 'https://old.openai.azure.com', deployment: 'old' })
  t.match(loadConfig({
    GPT4V_ENDPOINT: 'https://old.openai.azure.com',
    GPT4V_DEPLOYMENT: 'old',
    AZURE_OPENAI_ENDPOINT: 'https://new.openai.azure.com',
    AZURE_OPENAI_DEPLOYMENT: 'new'
  }).azure?.backends[0], { endpoint: 'https://new.openai.azure.com', deployment: 'new' }, 'the current names win')
  t.match(loadConfig({ GPT4V_ENDPOINT: 'https://old.openai.azure.com', GPT4V_DEPLOYMENT: 'old', AZURE_OPENAI_ENDPOINT: '' }).azure?.backends[0],
    { endpoint: 'https://old.openai.azure.com' }, 'an empty current name is unset')
  refused(t, { GPT4V_ENDPOINT: 'http://old.openai.azure.com', GPT4V_DEPLOYMENT: 'old' }, /AZURE_OPENAI_ENDPOINT must be an https:\/\/ URL/, 'an alias is checked as the variable it stands for')
  refused(t, { GPT4V_DEPLOYMENT: 'bad name!', AZURE_OPENAI_ENDPOINT: 'https://x.openai.azure.com' }, /env\/AZURE_OPENAI_DEPLOYMENT must match pattern/)
})

t.test('TRUST_PROXY', async t => {
  const trust = (value: string): Config['server']['trustProxy'] => loadConfig({ TRUST_PROXY: value }).server.trustProxy
  t.equal(trust('false'), false)
  t.equal(trust('true'), true)
  t.equal(trust('0'), 0)
  t.equal(trust('2'), 2, 'a hop count')
  t.equal(trust('10.0.0.0/8, 192.168.1.1'), '10.0.0.0/8, 192.168.1.1', 'addresses and CIDRs, as given')
  t.equal(trust('::1,fd00::/8'), '::1,fd00::/8')
  refused(t, { TRUST_PROXY: 'garbage' }, /env\/TRUST_PROXY must match pattern/)
  refused(t, { TRUST_PROXY: 'TRUE' }, /env\/TRUST_PROXY must match pattern/)
})

t.test('AUTH_MODE=apikey: API_KEY_HASHES and API_KEY_HASHES_FILE', async t => {
  refused(t, { AUTH_MODE: 'apikey' }, 'invalid configuration: AUTH_MODE includes apikey but neither API_KEY_HASHES nor API_KEY_HASHES_FILE lists a key hash')
  refused(t, { AUTH_MODE: 'apikey', API_KEY_HASHES: ' # a comment only ' }, /neither API_KEY_HASHES nor API_KEY_HASHES_FILE lists a key hash/)

  const malformed = 'invalid configuration: API_KEY_HASHES entries must be 64 hex digits (a SHA-256), optionally prefixed by "name:"'
  refused(t, { AUTH_MODE: 'apikey', API_KEY_HASHES: 'not-a-hash' }, malformed)
  refused(t, { AUTH_MODE: 'apikey', API_KEY_HASHES: HASH.slice(1) }, malformed, '63 hex digits')
  refused(t, { AUTH_MODE: 'apikey', API_KEY_HASHES: `bad name:${HASH}` }, malformed, 'a name with a space')
  refused(t, { AUTH_MODE: 'apikey', API_KEY_HASHES: `${HASH},oops` }, malformed, 'one bad entry among good ones')
  t.strictSame(loadConfig({ AUTH_MODE: 'none', API_KEY_HASHES: 'not-a-hash' }).callers.apiKeys, [], 'not read unless AUTH_MODE includes apikey')

  const inline = loadConfig({ AUTH_MODE: 'apikey', API_KEY_HASHES: `alice:${HASH}, ${OTHER_HASH.toUpperCase()}` }).callers
  t.strictSame(inline.modes, ['apikey'])
  t.strictSame(inline.entra, null)
  t.strictSame(inline.apiKeys, [
    { id: 'alice', sha256: Buffer.from(HASH, 'hex'), roles: ['Identify'] },
    { id: OTHER_HASH.slice(0, 12), sha256: Buffer.from(OTHER_HASH, 'hex'), roles: ['Identify'] }
  ], 'named, and unnamed (the id is the hash\'s first 12 hex digits, lower case); Identify when no roles are named')

  const dir = t.testdir({
    'keys.txt': [
      '# API keys of agrivision',
      `alice:${HASH}`,
      '',
      `  ${OTHER_HASH}   # bob's (unnamed)`,
      `carol.service-1:${OTHER_HASH.toUpperCase()}, dave:${HASH}`,
      ''
    ].join('\n'),
    'bad.txt': `alice:${HASH}\nnot a hash\n`
  })
  const fromFile = loadConfig({ AUTH_MODE: 'apikey', API_KEY_HASHES_FILE: join(dir, 'keys.txt') }).callers.apiKeys
  t.strictSame(fromFile.map(key => key.id), ['alice', OTHER_HASH.slice(0, 12), 'carol.service-1', 'dave'], 'comments and blank lines skipped; lines and commas both separate')
  t.strictSame(fromFile[2]?.sha256, Buffer.from(OTHER_HASH, 'hex'))
  const both = loadConfig({ AUTH_MODE: 'apikey', API_KEY_HASHES: `zed:${HASH}`, API_KEY_HASHES_FILE: join(dir, 'keys.txt') }).callers.apiKeys
  t.strictSame(both.map(key => key.id), ['zed', 'alice', OTHER_HASH.slice(0, 12), 'carol.service-1', 'dave'], 'the variable, then the file')
  refused(t, { AUTH_MODE: 'apikey', API_KEY_HASHES_FILE: join(dir, 'bad.txt') }, malformed, 'a malformed line in the file')
  refused(t, { AUTH_MODE: 'apikey', API_KEY_HASHES_FILE: join(dir, 'missing.txt') }, 'invalid configuration: API_KEY_HASHES_FILE cannot be read (ENOENT)')
  refused(t, { AUTH_MODE: 'apikey', API_KEY_HASHES_FILE: dir }, 'invalid configuration: API_KEY_HASHES_FILE cannot be read (EISDIR)')
  refused(t, { AUTH_MODE: 'apikey', API_KEY_HASHES: HASH, API_KEY_HASHES_FILE: join(dir, 'missing.txt') }, /API_KEY_HASHES_FILE cannot be read/, 'even with API_KEY_HASHES set')
})

t.test('AUTH_MODE=entra', async t => {
  refused(t, { AUTH_MODE: 'entra' }, 'invalid configuration: AUTH_MODE=entra needs ENTRA_TENANT_ID')
  refused(t, { AUTH_MODE: 'entra', ENTRA_TENANT_ID: TENANT }, 'invalid configuration: AUTH_MODE=entra needs ENTRA_AUDIENCE (the API\'s client id or App ID URI)')
  refused(t, { AUTH_MODE: 'entra', ENTRA_TENANT_ID: TENANT, ENTRA_AUDIENCE: 'api://agrivision', ENTRA_REQUIRED_ROLES: ' , ' }, 'invalid configuration: ENTRA_REQUIRED_ROLES is empty')

  t.strictSame(loadConfig({ AUTH_MODE: 'entra', ENTRA_TENANT_ID: TENANT, ENTRA_AUDIENCE: 'api://agrivision, 9a8b7c6d' }).callers, {
    modes: ['entra'],
    entra: {
      tenantId: TENANT,
      audiences: ['api://agrivision', '9a8b7c6d'],
      requiredRoles: ['VehicleIdentification.Identify'],
      jwksUri: `https://login.microsoftonline.com/${TENANT}/discovery/v2.0/keys`,
      issuers: [`https://login.microsoftonline.com/${TENANT}/v2.0`, `https://sts.windows.net/${TENANT}/`],
      jwksTimeoutMs: 5_000
    },
    apiKeys: []
  }, 'the tenant\'s discovery keys and v1/v2 issuers by default')

  const both = loadConfig({
    NODE_ENV: 'production',
    AUTH_MODE: 'apikey,entra',
    ENTRA_TENANT_ID: 'contoso.onmicrosoft.com',
    ENTRA_AUDIENCE: 'api://agrivision',
    ENTRA_REQUIRED_ROLES: 'A, B',
    ENTRA_JWKS_URI: 'https://keys.example/jwks',
    ENTRA_ISSUER: 'https://issuer.example/1, https://issuer.example/2',
    ENTRA_JWKS_TIMEOUT_MS: '200',
    API_KEY_HASHES: HASH
  }).callers
  t.strictSame(both.modes, ['apikey', 'entra'])
  t.match(both.entra, { requiredRoles: ['A', 'B'], jwksUri: 'https://keys.example/jwks', issuers: ['https://issuer.example/1', 'https://issuer.example/2'], jwksTimeoutMs: 200 })
  t.equal(both.apiKeys.length, 1)

  const https = 'invalid configuration: ENTRA_JWKS_URI must be an https:// URL (plain http only on loopback)'
  refused(t, { AUTH_MODE: 'entra', ENTRA_TENANT_ID: TENANT, ENTRA_AUDIENCE: 'a', ENTRA_JWKS_URI: 'http://keys.example/jwks' }, https)
  refused(t, { ENTRA_JWKS_URI: 'http://keys.example/jwks' }, https, 'the https rule holds even when AUTH_MODE does not use it')
  t.equal(loadConfig({ AUTH_MODE: 'entra', ENTRA_TENANT_ID: TENANT, ENTRA_AUDIENCE: 'a', ENTRA_JWKS_URI: 'http://127.0.0.1:9999/jwks' }).callers.entra?.jwksUri,
    'http://127.0.0.1:9999/jwks', 'plain http on loopback')
})

t.test('IMAGE_CONCURRENCY: from the memory budget unless set', async t => {
  const cores = availableParallelism()
  const concurrency = (env: NodeJS.ProcessEnv): number => loadConfig(env).images.concurrency
  t.equal(concurrency({ IMAGE_MEMORY_BUDGET_BYTES: String(8 * MiB) }), 1, 'at least 1, even when one worst case does not fit')
  t.equal(concurrency({ IMAGE_MEMORY_BUDGET_BYTES: String(64 * MiB), IMAGE_MAX_DECODE_BYTES: String(16 * MiB) }), Math.min(cores, 4), 'budget ÷ worst case')
  t.equal(concurrency({ IMAGE_MEMORY_BUDGET_BYTES: String(4096 * MiB), IMAGE_MAX_DECODE_BYTES: String(8 * MiB) }), cores, 'never more than the cores')
  t.equal(concurrency({ IMAGE_MEMORY_BUDGET_BYTES: String(64 * MiB), IMAGE_MAX_DECODE_BYTES: String(16 * MiB), IMAGE_CONCURRENCY: '3' }), 3, 'IMAGE_CONCURRENCY wins')
  t.equal(concurrency({ IMAGE_CONCURRENCY: '64' }), 64)
})

t.test('usage\'s batch prices: VISION_BATCH_PRICE_*_PER_MTOK, by default half the online prices, the same as the bulk jobs\'', async t => {
  const halves = loadConfig({ VISION_PRICE_INPUT_PER_MTOK: '2.5', VISION_PRICE_OUTPUT_PER_MTOK: '10' })
  t.strictSame(halves.history.batchPrices, { inputPerMillion: 1.25, outputPerMillion: 5 })
  t.strictSame(halves.history.batchPrices, halves.bulk.batchPrices)
  const set = loadConfig({ VISION_PRICE_INPUT_PER_MTOK: '2.5', VISION_PRICE_OUTPUT_PER_MTOK: '10', VISION_BATCH_PRICE_INPUT_PER_MTOK: '1', VISION_BATCH_PRICE_OUTPUT_PER_MTOK: '4' })
  t.strictSame(set.history.batchPrices, { inputPerMillion: 1, outputPerMillion: 4 })
  t.strictSame(set.history.prices, { inputPerMillion: 2.5, outputPerMillion: 10 })
  t.equal(loadConfig({}).history.batchPrices, null)
})

t.test('URLs that match the pattern but do not parse are refused as configuration, not a crash', async t => {
  for (const value of ['http://[', 'https://', 'https://exa mple.com']) {
    refused(t, { AZURE_OPENAI_ENDPOINT: value, AZURE_OPENAI_DEPLOYMENT: 'd' }, /AZURE_OPENAI_ENDPOINT/, `AZURE_OPENAI_ENDPOINT=${value}`)
    refused(t, { ENTRA_JWKS_URI: value }, /ENTRA_JWKS_URI/, `ENTRA_JWKS_URI=${value}`)
  }
})

t.test('a comment in API_KEY_HASHES may hold a comma', async t => {
  const config = loadConfig({ AUTH_MODE: 'apikey', API_KEY_HASHES: `bob:${HASH} # bob's, unnamed\n${OTHER_HASH}` })
  t.same(config.callers.apiKeys.map(entry => entry.id), ['bob', OTHER_HASH.slice(0, 12)])
})

t.test('API key entries may name their roles, as Entra names its app roles', async t => {
  const keys = loadConfig({
    AUTH_MODE: 'apikey',
    API_KEY_HASHES: `dashboard:${HASH}:VehicleIdentification.ReadAll+VehicleIdentification.Identify\n${OTHER_HASH}:VehicleIdentification.Admin`
  }).callers.apiKeys
  t.same(keys.map(entry => [entry.id, entry.roles]), [['dashboard', ['ReadAll', 'Identify']], [OTHER_HASH.slice(0, 12), ['Admin']]])
  refused(t, { AUTH_MODE: 'apikey', API_KEY_HASHES: `ops:${HASH}:VehicleIdentification.Root` }, /entry "ops" names an unknown role "VehicleIdentification.Root"/)
  refused(t, { AUTH_MODE: 'apikey', API_KEY_HASHES: `ops:${HASH}:` }, /API_KEY_HASHES entries must be/)
  refused(t, { AUTH_MODE: 'apikey', API_KEY_HASHES: `ops:${HASH}:ReadAll` }, /unknown role "ReadAll"/, 'our short names are not Entra\'s')
})

t.test('AZURE_OPENAI_BACKENDS: several deployments, checked at start-up', async t => {
  const entry = (extra: Record<string, unknown> = {}) => ({ name: 'ptu', endpoint: 'https://a.openai.azure.com/', deployment: 'gpt-4o', priority: 0, ...extra })
  const list = [entry(), entry({ name: 'west', endpoint: 'https://b.openai.azure.com', priority: 1, weight: 3, apiVersion: '2024-10-21' })]
  const several = loadConfig({ AZURE_OPENAI_BACKENDS: JSON.stringify(list) })
  t.equal(several.vision.backend, 'azure', 'a list selects the azure backend')
  t.strictSame(several.azure?.backends, [
    { name: 'ptu', endpoint: 'https://a.openai.azure.com', deployment: 'gpt-4o', apiVersion: 'v1', priority: 0, weight: 1 },
    { name: 'west', endpoint: 'https://b.openai.azure.com', deployment: 'gpt-4o', apiVersion: '2024-10-21', priority: 1, weight: 3 }
  ])
  t.strictSame(loadConfig({ AZURE_OPENAI_ENDPOINT: 'https://a.openai.azure.com', AZURE_OPENAI_DEPLOYMENT: 'gpt-4o' }).azure?.backends,
    [{ name: 'default', endpoint: 'https://a.openai.azure.com', deployment: 'gpt-4o', apiVersion: 'v1', priority: 0, weight: 1 }],
    'the single-deployment variables are a list of one')

  const dir = mkdtempSync(join(tmpdir(), 'agrivision-backends-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const file = join(dir, 'backends.json')
  writeFileSync(file, JSON.stringify(list))
  t.equal(loadConfig({ AZURE_OPENAI_BACKENDS_FILE: file }).azure?.backends.length, 2, 'or from a file')

  const refusedList = (value: unknown, pattern: RegExp, why: string) =>
    refused(t, { AZURE_OPENAI_BACKENDS: typeof value === 'string' ? value : JSON.stringify(value) }, pattern, why)
  refusedList('[{"name":', /AZURE_OPENAI_BACKENDS is not JSON/, 'not JSON')
  refusedList([], /a JSON list of 1 to 16 backends/, 'empty')
  refusedList({ name: 'x' }, /a JSON list of 1 to 16 backends/, 'not a list')
  refusedList([entry({ name: 'a' }), entry({ name: 'a', endpoint: 'https://c.openai.azure.com' })], /names "a" twice/, 'duplicate names')
  refusedList([entry({ name: 'a' }), entry({ name: 'b' })], /lists gpt-4o at https:\/\/a.openai.azure.com twice/, 'the same deployment twice')
  refusedList([entry({ endpoint: 'http://a.openai.azure.com' })], /AZURE_OPENAI_BACKENDS\[0\]\.endpoint must be an https:\/\/ URL/, 'plain http')
  refusedList([entry({ priority: -1 })], /AZURE_OPENAI_BACKENDS\[0\] at \/priority/, 'a negative priority')
  refusedList([entry({ weight: 0 })], /AZURE_OPENAI_BACKENDS\[0\] at \/weight/, 'a zero weight')
  refusedList([entry({ priorty: 1 })], /AZURE_OPENAI_BACKENDS\[0\]/, 'a misspelt key')
  refusedList([entry({ name: 'has space' })], /AZURE_OPENAI_BACKENDS\[0\] at \/name/, 'a name that cannot be a metric label')
  refusedList([entry({ apiVersion: '2024-02-01' })], /AZURE_OPENAI_BACKENDS\[0\]\.apiVersion=2024-02-01 has no structured outputs/, 'an API version without json_schema')
  refusedList(Array.from({ length: 17 }, (_, i) => entry({ name: `b${i}`, deployment: `d${i}` })), /1 to 16 backends/, 'too many')
  refused(t, { AZURE_OPENAI_BACKENDS: JSON.stringify(list), AZURE_OPENAI_ENDPOINT: 'https://a.openai.azure.com' }, /not both/, 'a list and an endpoint')
  refused(t, { AZURE_OPENAI_BACKENDS: JSON.stringify(list), AZURE_OPENAI_BACKENDS_FILE: file }, /not both/, 'a list and a file')
  refused(t, { AZURE_OPENAI_BACKENDS_FILE: join(dir, 'missing.json') }, /AZURE_OPENAI_BACKENDS_FILE cannot be read \(ENOENT\)/, 'a missing file')
})

t.test('Redis with the managed identity\'s token (REDIS_AUTH=entra): TLS only, no credentials in the URL', async t => {
  const url = 'rediss://cache.example.redis.cache.windows.net:6380'
  t.strictSame(loadConfig({ REDIS_URL: url, REDIS_AUTH: 'entra' }).redis,
    { url, ca: null, entra: { scope: 'https://redis.azure.com/.default', username: null } }, 'the user comes from the token by default')
  t.strictSame(loadConfig({ REDIS_URL: url, REDIS_AUTH: 'entra', REDIS_USERNAME: 'b1a2c3d4-0000-4000-8000-000000000001', REDIS_ENTRA_SCOPE: 'https://other.example/.default' }).redis.entra,
    { scope: 'https://other.example/.default', username: 'b1a2c3d4-0000-4000-8000-000000000001' })
  refused(t, { REDIS_AUTH: 'entra' }, /REDIS_AUTH=entra needs REDIS_URL/)
  refused(t, { REDIS_URL: 'redis://cache.example:6379', REDIS_AUTH: 'entra' }, /REDIS_URL must be rediss:\/\/ \(TLS\)/)
  refused(t, { REDIS_URL: 'rediss://:secret@cache.example:6380', REDIS_AUTH: 'entra' }, /remove the user and password from REDIS_URL/)
  refused(t, { REDIS_URL: 'rediss://someone@cache.example:6380', REDIS_AUTH: 'entra' }, /remove the user and password from REDIS_URL/)
  refused(t, { REDIS_URL: url, REDIS_USERNAME: 'someone' }, /REDIS_USERNAME is used with REDIS_AUTH=entra only/)
  refused(t, { REDIS_URL: url, REDIS_AUTH: 'entra', REDIS_CA_FILE: '/nonexistent/ca.pem' }, /REDIS_CA_FILE cannot be read \(ENOENT\)/)
  refused(t, { REDIS_URL: url, REDIS_AUTH: 'entra', REDIS_CA_FILE: import.meta.filename }, /REDIS_CA_FILE must hold PEM certificates/)
  refused(t, { REDIS_URL: url, REDIS_AUTH: 'key' }, /env\/REDIS_AUTH must be equal to one of the allowed values/)
  t.notOk(refusedMessageContains({ REDIS_URL: 'rediss://:secret@cache.example:6380', REDIS_AUTH: 'entra' }, 'secret'), 'the password is not repeated')
})

function refusedMessageContains (env: Record<string, string>, text: string): boolean {
  try {
    loadConfig(env)
    return false
  } catch (err) {
    return (err as Error).message.includes(text)
  }
}

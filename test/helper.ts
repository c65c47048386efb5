// One way to build the app in tests: the real factory, a config from a test environment, and
// the simulated backend unless a test hands in another.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { FastifyBaseLogger, FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { pino } from 'pino'
import { buildApp, type AppOptions } from '../src/app.ts'
import { loadConfig, type Config } from '../src/config.ts'
import { createSimulatedVision } from '../src/vision/simulated.ts'
import { createVision } from '../src/vision/index.ts'
import type { VisionService } from '../src/vision/types.ts'
import type { FakeAzure } from './support/fake-azure.ts'

// High rate limits and per-caller slots: tests send many requests from one address (the limits have their own tests).
export const TEST_ENV = {
  LOG_LEVEL: 'silent',
  GRAPHIQL: 'true',
  RATE_LIMIT_PER_MINUTE: '100000',
  GRAPHQL_RATE_LIMIT_PER_MINUTE: '1000000',
  VISION_MAX_CONCURRENCY_PER_CALLER: '1024',
  // Tests send the same photo again and expect the backend to be asked; the result cache has its own tests.
  RESULT_CACHE_TTL_S: '0',
  // Tests run many identifications back to back in one busy process and expect their thumbnails.
  THUMBNAIL_SKIP_ABOVE_UTILISATION: '1',
  // A child process per test app would cost each test a Node start-up; the child itself has its own tests
  // (thumbnail-process.test.ts, thumbnails.test.ts run at the default, low).
  THUMBNAIL_PRIORITY: 'normal',
  // The default is ADAPTIVE (a LOW look first); the suites written before it count one model call per identification,
  // check the HIGH-sized image sent and the simulated backend's LOW confidence. Tests of ADAPTIVE ask for it
  // (detail: ADAPTIVE or this variable); test/config.test.ts checks the default itself.
  VISION_IMAGE_DETAIL: 'auto'
}

/** A fresh folder for an app's history database (SQLite), removed when this test process exits. */
export function tempDataDir (): string {
  const dir = mkdtempSync(join(tmpdir(), 'agrivision-test-data-'))
  process.once('exit', () => { rmSync(dir, { recursive: true, force: true }) })
  return dir
}

export function testConfig (env: Record<string, string> = {}): Config {
  return loadConfig({ ...TEST_ENV, DATA_DIR: env.DATA_DIR ?? tempDataDir(), ...env })
}

/** The app with the test environment, ready; closed when the test `t` ends. */
export async function buildTestApp (
  t: Test, overrides: Partial<AppOptions> & { env?: Record<string, string> } = {}
): Promise<FastifyInstance> {
  const { env, ...options } = overrides
  const app = await buildApp({
    config: testConfig(env),
    vision: createSimulatedVision(),
    ...options
  })
  t.teardown(() => app.close())
  await app.ready()
  return app
}

/**
 * The real Azure backend (DefaultAzureCredential + openai) pointed at a loopback FakeAzure.
 * MSAL's managed-identity cache is process-wide: keep one FakeAzure per test file (tap runs each file in its own process).
 */
export async function buildAzureTestApp (
  t: Test, fake: FakeAzure, env: Record<string, string> = {}, logger?: FastifyBaseLogger
): Promise<{ app: FastifyInstance, vision: VisionService }> {
  fake.applyIdentityEnv()
  const config = testConfig({ AZURE_OPENAI_ENDPOINT: fake.origin, AZURE_OPENAI_DEPLOYMENT: AZURE_DEPLOYMENT, ...env })
  const log = logger ?? pino({ level: 'silent' })
  const vision = createVision(config, log)
  const app = await buildApp({ config, vision, logger: log })
  t.teardown(() => app.close())
  await app.ready()
  return { app, vision }
}

export const AZURE_DEPLOYMENT = 'gpt-4o-vision'

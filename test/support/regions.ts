// Several loopback Azure fakes standing for Azure OpenAI deployments in several regions, behind one managed
// identity: the first fake also serves the identity endpoint, the others accept its tokens. The real
// @azure/identity and openai code runs against them through AZURE_OPENAI_BACKENDS.
import type { FastifyInstance } from 'fastify'
import type { Test } from 'tap'
import { pino } from 'pino'
import { buildApp } from '../../src/app.ts'
import { createVision } from '../../src/vision/index.ts'
import type { IdentifyRequest, VisionService } from '../../src/vision/types.ts'
import { testConfig } from '../helper.ts'
import { FakeAzure } from './fake-azure.ts'

export interface RegionSpec {
  name: string
  priority: number
  weight?: number
  apiVersion?: string
}

export interface Regions {
  /** Each region's fake, by backend name. */
  fakes: Record<string, FakeAzure>
  /** The fake whose identity endpoint issues the token (the first region). */
  identity: FakeAzure
  /** AZURE_OPENAI_BACKENDS for these regions. */
  env: Record<string, string>
  /** Chat calls each region received since the last `reset()`. */
  calls (): Record<string, number>
  reset (): void
}

/** Starts the fakes (closed when `t` ends) and points this process's managed identity at the first. */
export async function startRegions (t: Test, specs: RegionSpec[]): Promise<Regions> {
  const identity = await new FakeAzure().start()
  const fakes: Record<string, FakeAzure> = {}
  for (const [index, spec] of specs.entries()) {
    fakes[spec.name] = index === 0 ? identity : await new FakeAzure({ trustTokensFrom: identity }).start()
  }
  t.teardown(async () => { for (const fake of Object.values(fakes)) await fake.close() })
  identity.applyIdentityEnv()
  const backends = specs.map(spec => ({ ...spec, endpoint: (fakes[spec.name] as FakeAzure).origin, deployment: `gpt-4o-${spec.name}` }))
  const marks: Record<string, number> = {}
  const regions: Regions = {
    fakes,
    identity,
    env: { AZURE_OPENAI_BACKENDS: JSON.stringify(backends) },
    calls: () => Object.fromEntries(Object.entries(fakes).map(([name, fake]) => [name, fake.chatRequests.length - (marks[name] ?? 0)])),
    reset: () => { for (const [name, fake] of Object.entries(fakes)) marks[name] = fake.chatRequests.length }
  }
  return regions
}

/** The vision service on these regions (the real openai client), without an app. */
export function regionsVision (regions: Regions, env: Record<string, string> = {}): VisionService {
  return createVision(testConfig({ ...regions.env, ...env }), pino({ level: 'silent' }))
}

/** The app on these regions; closed when `t` ends. */
export async function buildRegionsApp (
  t: Test, regions: Regions, env: Record<string, string> = {}
): Promise<{ app: FastifyInstance, vision: VisionService }> {
  const config = testConfig({ ...regions.env, ...env })
  const log = pino({ level: 'silent' })
  const vision = createVision(config, log)
  const app = await buildApp({ config, vision, logger: log })
  t.teardown(() => app.close())
  await app.ready()
  return { app, vision }
}

/** A request for vision.identify directly (the fakes do not read the image). */
export function visionRequest (signal: AbortSignal = new AbortController().signal): IdentifyRequest {
  return {
    image: Buffer.from('not really a jpeg: the fakes never decode it'),
    mimeType: 'image/jpeg',
    width: 64,
    height: 48,
    detail: 'low',
    instructions: 'What vehicle is this?',
    language: 'en',
    signal
  }
}

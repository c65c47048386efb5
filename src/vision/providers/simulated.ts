// The embedded default backend: calls no model and says so. It lets a fresh clone serve the
// whole API with no Azure at all, and reports only what it can honestly measure.
import { createHash } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { VEHICLE_CATEGORIES, type DetectedVehicle, type EquipmentKind, type ImageQuality, type VehicleCategory } from '../answer-schema.ts'
import type { VisionProvider } from '../provider.ts'
import { targetSize } from '../../image/tokens.ts'
import type { IdentifyRequest, IdentifyResult, VisionBackend, VisionService, VisionStatus } from '../types.ts'

export const SIMULATED_MODEL = 'simulated'
export const SIMULATED = 'SIMULATED' satisfies VisionBackend

export interface SimulatedVisionOptions {
  /** Artificial latency per call, for load tests and benchmarks. */
  latencyMs?: number
}

/** The simulated backend as a provider: it could stand behind the failover like any other. */
export function createSimulatedProvider (options: SimulatedVisionOptions = {}): VisionProvider {
  const latencyMs = options.latencyMs ?? 0
  return {
    kind: SIMULATED,
    name: 'simulated',
    deployment: null,
    priority: 0,
    weight: 1,
    async identify (request, { signal }) {
      if (latencyMs > 0) await sleep(latencyMs, undefined, { signal })
      const vehicles = simulatedVehicles(request)
      const imageQuality = simulatedImageQuality(request)
      return { answer: simulatedAnswer(request), vehicles, imageQuality, model: SIMULATED_MODEL, usage: null, upstreamStatus: null }
    },
    // Only an abandoned wait can fail it: never another provider's turn.
    classify: (error) => ({ outcome: 'aborted', tryNext: false, error }),
    status: () => ({ ready: true }),
    cacheIdentity: () => 'simulated'
  }
}

/**
 * The simulated service: its one provider alone, without the failover (nothing to fail over to, no
 * routing state to show): `backendName` is null, `backends` absent, as they always were.
 */
export function createSimulatedVision (options: SimulatedVisionOptions = {}): VisionService {
  const provider = createSimulatedProvider(options)
  const noHold = (): void => {}
  return {
    backend: provider.kind,
    readsPixels: false,
    async identify (request: IdentifyRequest): Promise<IdentifyResult> {
      const result = await provider.identify(request, { signal: request.signal, timeoutMs: Number.POSITIVE_INFINITY, hold: noHold })
      return { ...result, backendName: null }
    },
    status (): VisionStatus {
      return { backend: provider.kind, deployment: provider.deployment, ...provider.status() }
    },
    cacheIdentity: () => provider.cacheIdentity()
  }
}

export function simulatedAnswer (request: Pick<IdentifyRequest, 'mimeType' | 'image' | 'width' | 'height' | 'language' | 'described'>): string {
  const kind = request.mimeType.slice('image/'.length).toUpperCase()
  const received = request.described === true
    // Nothing reads the pixels here: ADAPTIVE's LOW image is described, not encoded (its size in bytes is unknown).
    ? `Would have been sent a ${request.width}×${request.height} ${kind} image made from the ${request.image.length}-byte upload (not encoded: no model reads it); `
    : `Received a ${request.width}×${request.height} ${kind} image of ${request.image.length} bytes; `
  return '[SIMULATED] No vision model was called, so the vehicle was not identified. ' + received +
    `the answer would be in language "${request.language}". ` +
    'Set AZURE_OPENAI_ENDPOINT and AZURE_OPENAI_DEPLOYMENT to use an Azure OpenAI deployment.'
}

/** What each category usually is, for the simulated result (the model decides per photo). */
const SIMULATED_KIND: Record<Exclude<VehicleCategory, 'OTHER'>, EquipmentKind> = {
  TRACTOR: 'MACHINE',
  COMBINE_HARVESTER: 'MACHINE',
  FORAGE_HARVESTER: 'MACHINE',
  SELF_PROPELLED_SPRAYER: 'MACHINE',
  WINDROWER: 'MACHINE',
  COTTON_HARVESTER: 'MACHINE',
  SUGARCANE_HARVESTER: 'MACHINE',
  ROOT_CROP_HARVESTER: 'MACHINE',
  LOADER_TELEHANDLER: 'MACHINE',
  UTILITY_VEHICLE: 'MACHINE',
  TILLAGE_IMPLEMENT: 'IMPLEMENT',
  PLANTER_SEEDER: 'IMPLEMENT',
  FERTILIZER_SPREADER: 'IMPLEMENT',
  SLURRY_MANURE_APPLICATOR: 'IMPLEMENT',
  TRAILED_SPRAYER: 'IMPLEMENT',
  BALER_HAY_TOOL: 'IMPLEMENT',
  TRAILER_GRAIN_CART: 'IMPLEMENT',
  FEEDER_MIXER: 'IMPLEMENT',
  IRRIGATION_SYSTEM: 'MACHINE'
}

/** The categories the simulated backend picks from: every one but OTHER. */
export const SIMULATED_CATEGORIES = VEHICLE_CATEGORIES.filter((category): category is Exclude<VehicleCategory, 'OTHER'> => category !== 'OTHER')

/** At detail "low", a sent image at least this many pixels on its short side is one the simulated backend "can see". */
export const SIMULATED_LOW_MIN_SHORT_SIDE = 300

type Seen = Pick<IdentifyRequest, 'detail' | 'width' | 'height'>

/**
 * Whether a LOW look is one the simulated backend pretends it cannot see, so ADAPTIVE's second look can be tried with
 * no Azure. Judged on what the model looks at (a small upload is sent as it is at LOW; the model shrinks it to 512).
 */
function tooSmallAtLow ({ detail, width, height }: Seen): boolean {
  if (detail !== 'low') return false
  const seen = targetSize(width, height, 'low')
  return Math.min(seen.width, seen.height) < SIMULATED_LOW_MIN_SHORT_SIDE
}

/** CLEAR, but TOO_SMALL for a LOW look under SIMULATED_LOW_MIN_SHORT_SIDE: by the sent size only, never the content. */
export function simulatedImageQuality (request: Seen): ImageQuality {
  return tooSmallAtLow(request) ? 'TOO_SMALL' : 'CLEAR'
}

/**
 * One obviously simulated vehicle, the same for the same image: its category picked by the SHA-256 of the
 * image bytes the backend received (the first 4 bytes, modulo the number of categories), make "Simulated".
 * Confidence LOW, except at detail "low" for a sent image at least SIMULATED_LOW_MIN_SHORT_SIDE pixels on its
 * short side: MEDIUM (so ADAPTIVE keeps one look for a normal photo and takes two for a small one). So a
 * front end can render every field, and every ADAPTIVE path can be tried, with no Azure.
 */
export function simulatedVehicles (request: Pick<IdentifyRequest, 'image' | 'sha256' | 'described'> & Partial<Seen>): DetectedVehicle[] {
  // The digest the flow already made of these bytes, else one made here (the same value either way).
  const short = (request.sha256 ?? createHash('sha256').update(request.image).digest('hex')).slice(0, 8)
  const category = SIMULATED_CATEGORIES[Number.parseInt(short, 16) % SIMULATED_CATEGORIES.length] as Exclude<VehicleCategory, 'OTHER'>
  const seenAtLow = request.detail === 'low' && request.width !== undefined && request.height !== undefined && !tooSmallAtLow(request as Seen)
  return [{
    category,
    kind: SIMULATED_KIND[category],
    make: 'Simulated',
    model: `SIM-${short}`,
    confidence: seenAtLow ? 'MEDIUM' : 'LOW',
    evidence: [
      '[SIMULATED] no vision model was called',
      `category chosen from the SHA-256 of the ${request.described === true ? 'upload' : 'image'} (${short}…), not from its content`,
      ...(request.detail === 'low'
        ? [`confidence from the sent image's short side at detail low (${SIMULATED_LOW_MIN_SHORT_SIDE} pixels or more: MEDIUM), not from its content`]
        : [])
    ]
  }]
}

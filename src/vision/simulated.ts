// The embedded default backend: calls no model and says so. It lets a fresh clone serve the
// whole API with no Azure at all, and reports only what it can honestly measure.
import { createHash } from 'node:crypto'
import { setTimeout as sleep } from 'node:timers/promises'
import { VEHICLE_CATEGORIES, type DetectedVehicle, type EquipmentKind, type VehicleCategory } from './answer-schema.ts'
import type { IdentifyRequest, IdentifyResult, VisionService, VisionStatus } from './types.ts'

export const SIMULATED_MODEL = 'simulated'

export interface SimulatedVisionOptions {
  /** Artificial latency per call, for load tests and benchmarks. */
  latencyMs?: number
}

export function createSimulatedVision (options: SimulatedVisionOptions = {}): VisionService {
  const latencyMs = options.latencyMs ?? 0
  return {
    backend: 'SIMULATED',
    async identify (request: IdentifyRequest): Promise<IdentifyResult> {
      if (latencyMs > 0) await sleep(latencyMs, undefined, { signal: request.signal })
      const vehicles = simulatedVehicles(request)
      return { answer: simulatedAnswer(request), vehicles, model: SIMULATED_MODEL, usage: null, upstreamStatus: null, backendName: null }
    },
    status (): VisionStatus {
      return { backend: 'SIMULATED', deployment: null, ready: true }
    }
  }
}

export function simulatedAnswer (request: Pick<IdentifyRequest, 'mimeType' | 'image' | 'width' | 'height' | 'language'>): string {
  const kind = request.mimeType.slice('image/'.length).toUpperCase()
  return '[SIMULATED] No vision model was called, so the vehicle was not identified. ' +
    `Received a ${request.width}×${request.height} ${kind} image of ${request.image.length} bytes; ` +
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

/**
 * One obviously simulated vehicle, the same for the same image: its category picked by the SHA-256 of the
 * image bytes the backend received (the first 4 bytes, modulo the number of categories), make "Simulated",
 * confidence LOW. So a front end can render every field with no Azure.
 */
export function simulatedVehicles (request: Pick<IdentifyRequest, 'image' | 'sha256'>): DetectedVehicle[] {
  // The digest the flow already made of these bytes, else one made here (the same value either way).
  const short = (request.sha256 ?? createHash('sha256').update(request.image).digest('hex')).slice(0, 8)
  const category = SIMULATED_CATEGORIES[Number.parseInt(short, 16) % SIMULATED_CATEGORIES.length] as Exclude<VehicleCategory, 'OTHER'>
  return [{
    category,
    kind: SIMULATED_KIND[category],
    make: 'Simulated',
    model: `SIM-${short}`,
    confidence: 'LOW',
    evidence: [
      '[SIMULATED] no vision model was called',
      `category chosen from the SHA-256 of the image (${short}…), not from its content`
    ]
  }]
}

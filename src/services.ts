// What the routes share, built once per app by src/app.ts and handed to the plugins that need it.
import type { Config } from './config.ts'
import type { IdentificationEvents } from './identification/events.ts'
import type { ImagePipeline } from './image/pipeline.ts'
import type { AdmissionGate } from './limits/admission.ts'
import type { UploadBudget } from './limits/receiving.ts'
import type { Metrics } from './metrics/registry.ts'
import type { VisionService } from './vision/types.ts'

export interface AppServices {
  config: Config
  vision: VisionService
  images: ImagePipeline
  metrics: Metrics
  /** Vision slots: taken by the identification flow for its work. */
  admission: AdmissionGate
  /** Upload bytes in flight, per caller and in total: reserved by the HTTP layer before a body is read. */
  uploads: UploadBudget
  /** Where identifications are announced: capabilities subscribe here. */
  events: IdentificationEvents
}

// Kept for existing imports: the simulated backend lives in providers/simulated.ts.
export {
  createSimulatedProvider, createSimulatedVision, SIMULATED, SIMULATED_CATEGORIES, SIMULATED_LOW_MIN_SHORT_SIDE, SIMULATED_MODEL,
  simulatedAnswer, simulatedImageQuality, simulatedVehicles,
  type SimulatedVisionOptions
} from './providers/simulated.ts'

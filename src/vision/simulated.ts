// Kept for existing imports: the simulated backend lives in providers/simulated.ts.
export {
  createSimulatedProvider, createSimulatedVision, SIMULATED, SIMULATED_CATEGORIES, SIMULATED_MODEL, simulatedAnswer, simulatedVehicles,
  type SimulatedVisionOptions
} from './providers/simulated.ts'

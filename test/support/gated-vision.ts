// A vision backend for tests that must hold an identification running: the simulated one behind a gate,
// with a call counter and a one-shot failure.
import { UpstreamUnavailableError } from '../../src/errors.ts'
import { createSimulatedVision } from '../../src/vision/simulated.ts'
import type { IdentifyRequest, VisionService } from '../../src/vision/types.ts'

/** The simulated backend behind a gate: calls counted; while `hold()` is on, each call waits for `open()`. */
export function gatedVision () {
  const inner = createSimulatedVision()
  let gate: Promise<void> | null = null
  let openGate = (): void => {}
  let entered = (): void => {}
  let failNext = false
  const state = {
    calls: 0,
    /** The next calls wait for open(); resolves `started` when one is waiting. */
    hold () {
      gate = new Promise(resolve => { openGate = resolve })
      return { started: new Promise<void>(resolve => { entered = resolve }) }
    },
    open () { const release = openGate; gate = null; release() },
    failOnce () { failNext = true },
    vision: {
      backend: inner.backend,
      status: () => inner.status(),
      async identify (request: IdentifyRequest) {
        state.calls++
        if (gate !== null) { entered(); await gate }
        if (failNext) { failNext = false; throw new UpstreamUnavailableError('The model is unavailable (test).') }
        return await inner.identify(request)
      }
    } satisfies VisionService
  }
  return state
}

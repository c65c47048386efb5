// What the subscription socket tests share: the app listening on a loopback port, a metric read from /metrics,
// the process' timers (mercurius' keep-alive intervals among them), and a condition waited for.
import type { FastifyInstance } from 'fastify'

/** Listens on a loopback port; the WebSocket URL of /graphql. */
export async function listenForSockets (app: FastifyInstance): Promise<string> {
  await app.listen({ host: '127.0.0.1', port: 0 })
  const { port } = app.server.address() as { port: number }
  return `ws://127.0.0.1:${port}/graphql`
}

/** One sample of /metrics (`name` with its labels, as printed), 0 when absent. */
export async function metric (app: FastifyInstance, name: string): Promise<number> {
  const res = await app.inject({ method: 'GET', url: '/metrics' })
  const match = new RegExp(`^${name.replace(/[{}]/g, '\\$&')} (\\d+)$`, 'm').exec(res.payload)
  return Number(match?.[1] ?? 0)
}

/** The process' active (ref'd) timers: mercurius' keep-alive intervals among them. */
export function activeTimers (): number {
  return process.getActiveResourcesInfo().filter(resource => resource === 'Timeout').length
}

export async function until (condition: () => Promise<boolean> | boolean, what: string, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms
  while (!await condition()) {
    if (Date.now() > deadline) throw new Error(`${what}: not within ${ms} ms`)
    await new Promise(resolve => setTimeout(resolve, 10))
  }
}

// The process: configuration, real services, listen, graceful shutdown.
import closeWithGrace from 'close-with-grace'
import { pino } from 'pino'
import { buildApp } from './app.ts'
import { ConfigError, loadConfig } from './config.ts'
import { loggerOptions } from './logger.ts'
import { createVision } from './vision/index.ts'

let config
try {
  config = loadConfig()
} catch (err) {
  if (!(err instanceof ConfigError)) throw err
  process.stderr.write(`agrivision: ${err.message}\n`)
  process.exit(1)
}

// Asynchronous writes: with pino's default (synchronous) destination, a full stdout pipe (a log shipper that
// falls behind) blocks the event loop in atomic-sleep until it drains; measured at 13 % of the main thread under
// the bench's load. Lines still pending are flushed when the process exits.
const log = pino(loggerOptions(config.server), pino.destination({ dest: 1, sync: false }))
// Handed to the app, whose vision plugin warms it up once listening (ready once the first token is in) and closes it.
const vision = createVision(config, log)
let app: Awaited<ReturnType<typeof buildApp>>
try {
  app = await buildApp({ config, vision, logger: log })
} catch (err) {
  // A plugin that cannot start (the history folder not writable, ...): one log line that says why, exit 1.
  log.fatal({ err }, `start-up failed: ${(err as Error).message}`)
  process.exit(1)
}

closeWithGrace({ delay: config.server.shutdownGraceMs, logger: log }, async ({ signal, err }) => {
  if (err) log.error({ err }, 'shutting down after an error')
  else log.info({ signal }, 'shutting down: finishing in-flight requests')
  // app.close() closes idle keep-alive connections once, at the start; a connection whose request
  // finishes later would then hold the server open until its keep-alive timeout. Sweep them.
  const sweeper = setInterval(() => app.server.closeIdleConnections(), 100)
  try {
    await app.close()
  } finally {
    clearInterval(sweeper)
  }
})

const { host, port } = config.server
await app.listen({ host, port })
if (config.graphql.graphiql) log.info(`GraphiQL: http://${host.includes(':') ? `[${host}]` : host}:${(app.server.address() as { port: number }).port}/graphiql`)

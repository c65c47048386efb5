// The one place background workers (webhook delivery, retention purges, ...) register: each is
// started once the app is ready, stopped when it closes, and says whether it is healthy, which
// /health/ready reports. A worker that fails to start stops the app from starting.
import fp from 'fastify-plugin'
import type { FastifyInstance } from 'fastify'

export interface Worker {
  /** Shown in logs and in /health/ready's reason. */
  name: string
  start (): Promise<void> | void
  /** Finish or abandon current work; called once, on close. */
  stop (): Promise<void> | void
  /** False while it cannot do its job (its store is down, ...). Default: ready once started. */
  ready? (): boolean
  /** True while it works in a reduced way the service can live with (history buffering while its database is down). */
  degraded? (): boolean
}

export interface Workers {
  register (worker: Worker): void
  /** The names of started workers that say they are not ready. */
  notReady (): string[]
  /** The names of started workers that say they are degraded. */
  degraded (): string[]
}

declare module 'fastify' {
  interface FastifyInstance {
    workers: Workers
  }
}

async function workersPlugin (app: FastifyInstance): Promise<void> {
  const registered: Worker[] = []
  const started = new Set<Worker>()

  app.decorate('workers', {
    register (worker: Worker): void {
      if (started.size > 0) throw new Error(`worker ${worker.name} registered after start-up`)
      registered.push(worker)
    },
    notReady (): string[] {
      return [...started].filter(worker => worker.ready?.() === false).map(worker => worker.name)
    },
    degraded (): string[] {
      return [...started].filter(worker => worker.degraded?.() === true).map(worker => worker.name)
    }
  })

  app.addHook('onReady', async () => {
    for (const worker of registered) {
      await worker.start()
      started.add(worker)
      app.log.info({ worker: worker.name }, 'worker started')
    }
  })
  app.addHook('onClose', async () => {
    for (const worker of [...started].reverse()) {
      try {
        await worker.stop()
      } catch (err) {
        app.log.error({ err, worker: worker.name }, 'worker failed to stop cleanly')
      }
      started.delete(worker)
    }
  })
}

export default fp(workersPlugin, { name: 'workers', fastify: '5.x' })

// The offline queue: a photo taken with no connection waits in IndexedDB (it survives closing the page) and is
// sent once the connection returns. Each entry keeps its Idempotency-Key, so a send that was cut off and sent
// again is answered once by the service: never two identifications, never paid twice.
import { createStore, del, entries, get, set } from 'idb-keyval'
import type { UploadRequest } from './api.ts'

export interface QueuedPhoto extends UploadRequest {
  queuedAt: number
  bytes: number
}

const store = createStore('agrivision', 'queue')

export async function enqueue (photo: QueuedPhoto): Promise<void> {
  await set(photo.key, photo, store)
}

export async function queued (): Promise<QueuedPhoto[]> {
  return (await entries<string, QueuedPhoto>(store)).map(([, value]) => value).sort((a, b) => a.queuedAt - b.queuedAt)
}

/** Whether it still waits (not cancelled meanwhile). */
export async function isQueued (key: string): Promise<boolean> {
  return (await get(key, store)) !== undefined
}

export async function dequeue (key: string): Promise<void> {
  await del(key, store)
}

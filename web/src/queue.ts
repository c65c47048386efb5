// The offline queue: a photo taken with no connection waits in IndexedDB (it survives closing the page) and is
// sent once the connection returns. Each entry keeps its Idempotency-Key, so a send that was cut off and sent
// again is answered once by the service: never two identifications, never paid twice. Each entry also keeps its
// owner (owner.ts): only that identity sees or sends it; on a shared phone, the next user's credentials never do.
import { createStore, del, entries, get, set, setMany } from 'idb-keyval'
import type { UploadRequest } from './api.ts'

export interface QueuedPhoto extends UploadRequest {
  queuedAt: number
  bytes: number
  /** Who took it (owner.ts). Absent on entries queued before owners were recorded: those wait until someone claims them. */
  owner?: string
}

const store = createStore('agrivision', 'queue')

export async function enqueue (photo: QueuedPhoto & { owner: string }): Promise<void> {
  await set(photo.key, photo, store)
}

async function all (): Promise<QueuedPhoto[]> {
  return (await entries<string, QueuedPhoto>(store)).map(([, value]) => value).sort((a, b) => a.queuedAt - b.queuedAt)
}

/** What waits for this owner, oldest first. */
export async function queued (owner: string): Promise<QueuedPhoto[]> {
  return (await all()).filter(photo => photo.owner === owner)
}

/** Entries from before owners were recorded: nobody sends them until the signed-in user says they are theirs. */
export async function unowned (): Promise<QueuedPhoto[]> {
  return (await all()).filter(photo => typeof photo.owner !== 'string')
}

/** Whether it still waits for this owner (not cancelled or discarded meanwhile). */
export async function isQueued (key: string, owner: string): Promise<boolean> {
  return (await get<QueuedPhoto>(key, store))?.owner === owner
}

export async function dequeue (key: string): Promise<void> {
  await del(key, store)
}

/** Removes every entry of this owner (sign-out, "discard"). */
export async function discardOwned (owner: string): Promise<number> {
  const mine = await queued(owner)
  for (const photo of mine) await del(photo.key, store)
  return mine.length
}

/** The signed-in user says the unowned entries are theirs: from now on they are. */
export async function claimUnowned (owner: string): Promise<void> {
  await setMany((await unowned()).map(photo => [photo.key, { ...photo, owner }]), store)
}

/** The signed-in user says the unowned entries are not to be sent. */
export async function discardUnowned (): Promise<void> {
  for (const photo of await unowned()) await del(photo.key, store)
}

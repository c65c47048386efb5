// New identifications of this caller, from this phone or another device, as they happen: the
// identificationCompleted subscription over graphql-transport-ws (the graphql-ws client), credentials in
// connection_init. The client reconnects by itself (fresh credentials each time: an expired token is renewed).
import { createClient, type Client } from 'graphql-ws'
import { IDENTIFICATION_FIELDS, type Identification } from './api.ts'
import type { Credentials } from './auth.ts'
import type { IdentificationCompletedSubscription } from './generated/api-types.ts'

const IDENTIFICATION_COMPLETED = /* GraphQL */ `subscription IdentificationCompleted {
  identificationCompleted { ...IdentificationFields }
}`

export function subscribeToIdentifications (
  credentials: Credentials, onIdentification: (identification: Identification) => void
): () => void {
  const client: Client = createClient({
    url: `${location.protocol === 'https:' ? 'wss' : 'ws'}://${location.host}/graphql`,
    connectionParams: async () => await credentials.connectionParams(),
    retryAttempts: Infinity,
    shouldRetry: () => true,
    lazy: false
  })
  const stop = client.subscribe<IdentificationCompletedSubscription>(
    { query: `${IDENTIFICATION_COMPLETED}\n${IDENTIFICATION_FIELDS}` },
    {
      next: ({ data }) => { if (data?.identificationCompleted) onIdentification(data.identificationCompleted) },
      error: () => {},
      complete: () => {}
    })
  return () => {
    stop()
    void client.dispose()
  }
}

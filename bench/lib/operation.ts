// The one operation every load request sends (the tests' own), and the preflight headers that go with it.
export { IDENTIFY } from '../../test/support/multipart.ts'

/** One preflight header each peer accepts: Apollo's (apollo-require-preflight) and ours (graphql-require-preflight). */
export const PREFLIGHT_HEADERS = { 'apollo-require-preflight': '1', 'graphql-require-preflight': '1' }

// Which upload policy a multipart request gets, from its `operations`: the mutation's one root field, remembered by
// document so that a repeated upload does not parse again, and right whatever was remembered before.
import t from 'tap'
import { createPolicySelector } from '../src/graphql/upload-policy.ts'
import type { UploadPolicy } from '../src/graphql/registry.ts'

const bulk = { field: 'createBulkJob', maxFiles: 100, maxFileBytes: 1 << 30, sink: { dir: '/tmp' } } as unknown as UploadPolicy
const policies = new Map([['createBulkJob', bulk]])

t.test('the mutation\'s one root field names the policy; anything else gets none', async t => {
  const select = createPolicySelector(policies, 1000)
  t.equal(select({ query: 'mutation ($a: Upload) { createBulkJob(archive: $a) { id } }' }), bulk)
  t.equal(select({ query: 'mutation ($a: Upload) { createBulkJob(archive: $a) { id } }' }), bulk, 'again, remembered')
  t.equal(select({ query: 'mutation ($i: Upload!) { identifyVehicle(image: $i) { id } }' }), undefined)
  t.equal(select({ query: '{ createBulkJob { id } }' }), undefined, 'a query, not a mutation')
  t.equal(select({ query: 'mutation { createBulkJob { id } identifyVehicle { id } }' }), undefined, 'two root fields')
  t.equal(select({ query: 'mutation { createBulkJob(' }), undefined, 'a parse error')
  t.equal(select({ query: 42 as unknown as string }), undefined, 'not a string')
  const two = 'mutation A { identifyVehicle { id } } mutation B { createBulkJob { id } }'
  t.equal(select({ query: two }), undefined, 'two operations and no name')
  t.equal(select({ query: two, operationName: 'B' }), bulk, 'the named one')
  t.equal(select({ query: two, operationName: 'A' }), undefined, 'the same document, another name: not the remembered answer')
  t.equal(select({ query: `mutation { createBulkJob { id } } ${'#'.repeat(20_000)}` }), bulk, 'a long document is parsed, not remembered')
})

t.test('a client sending thousands of distinct documents gets right answers, within the token bound', async t => {
  const select = createPolicySelector(policies, 50)
  const wrong: number[] = []
  for (let i = 0; i < 2000; i++) {
    const query = i % 2 === 0 ? `mutation M${i} { createBulkJob { id } }` : `mutation M${i} { identifyVehicle { id } }`
    if (select({ query }) !== (i % 2 === 0 ? bulk : undefined)) wrong.push(i)
  }
  t.same(wrong, [], 'every document\'s own policy')
  t.equal(select({ query: 'mutation M0 { createBulkJob { id } }' }), bulk, 'the first again, long forgotten')
  const deep = `mutation { createBulkJob { ${'a '.repeat(100)} } }`
  t.equal(select({ query: deep }), undefined, 'over maxTokens: no policy (mercurius refuses the document itself)')
})

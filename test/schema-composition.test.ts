// The schema served is composed from the parts features hand to app.graphqlRegistry: it must be every
// .graphql file of the service, whatever is switched off (HISTORY=off keeps the same API, with nulls and
// errors), each type with its fields in the same order; and the registry says so when parts collide.
import { readFileSync } from 'node:fs'
import t from 'tap'
import {
  buildClientSchema, buildSchema, getIntrospectionQuery, isObjectType, isScalarType, printType, type GraphQLSchema, type IntrospectionQuery
} from 'graphql'
import type { FastifyInstance } from 'fastify'
import { buildTestApp } from './helper.ts'
import { loadSchemaSDL, schemaFiles } from '../src/graphql/schema.ts'
import { sdlNotComposed } from '../src/graphql/plugin.ts'
import { createGraphqlRegistry, mergeResolvers } from '../src/graphql/registry.ts'
import { makeKey as historyMakeKey } from '../src/history/records.ts'
import { makeKey as liveMakeKey } from '../src/subscriptions/filter.ts'

const fromFiles = buildSchema(loadSchemaSDL())

async function servedSchema (app: FastifyInstance): Promise<GraphQLSchema> {
  const response = await app.inject({
    method: 'POST',
    url: '/graphql',
    payload: { query: getIntrospectionQuery({ descriptions: true, inputValueDeprecation: true }) }
  })
  return buildClientSchema((response.json() as { data: IntrospectionQuery }).data)
}

/**
 * Each named type printed (descriptions, fields in their order), by name: what a client sees, whatever the types'
 * order. A custom scalar without its description: the resolvers' GraphQLScalarType (src/graphql/scalars.ts) replaces
 * the SDL's, as it always has.
 */
function typesOf (schema: GraphQLSchema): Record<string, string> {
  return Object.fromEntries(Object.values(schema.getTypeMap())
    .filter(type => !type.name.startsWith('__'))
    .map(type => [type.name, isScalarType(type) ? `scalar ${type.name}` : printType(type)]))
}

for (const history of ['on', 'off']) {
  t.test(`HISTORY=${history}: the schema served is every .graphql file, type by type and field by field`, async t => {
    const app = await buildTestApp(t, { env: { HISTORY: history } })
    const served = typesOf(await servedSchema(app))
    const expected = typesOf(fromFiles)
    t.same(Object.keys(served).sort(), Object.keys(expected).sort(), 'the same types')
    for (const [name, printed] of Object.entries(expected)) t.equal(served[name], printed, name)
    // The parts' roots: identify's Query and Mutation, extended by history and webhooks; subscriptions' Subscription.
    for (const root of ['Query', 'Mutation', 'Subscription']) t.ok(isObjectType(fromFiles.getType(root)), `${root} is defined`)
  })
}

t.test('a .graphql file that no part hands in is found (the graphql plugin refuses to start then)', async t => {
  const files = schemaFiles()
  const identify = files.find(file => file.endsWith('/src/identify/identify.graphql'))
  const subscriptions = files.find(file => file.endsWith('/src/subscriptions/subscriptions.graphql'))
  t.ok(identify, 'identify keeps its SDL beside it')
  t.ok(subscriptions, 'subscriptions keep theirs beside them')
  const all = files.map(file => readFileSync(file, 'utf8'))
  t.same(sdlNotComposed(files, [all.join('\n')]), [], 'all handed in (even joined in one part)')
  const withoutIdentify = files.filter(file => file !== identify).map(file => readFileSync(file, 'utf8'))
  t.same(sdlNotComposed(files, withoutIdentify), [identify])
  t.same(sdlNotComposed(files, []), files, 'none handed in')
})

t.test('the registry: a field resolved by two parts, a part given twice, or one added after composing is refused', async t => {
  const a = { name: 'a', resolvers: { Query: { x: () => 1 } } }
  const b = { name: 'b', resolvers: { Query: { x: () => 2, y: () => 3 } } }
  t.throws(() => mergeResolvers([a, b]), /Query\.x is resolved by both a and b/)
  const merged = mergeResolvers([a, { name: 'c', resolvers: { Query: { y: () => 3 }, Mutation: { z: () => 4 } } }]) as Record<string, Record<string, unknown>>
  t.same(Object.keys(merged.Query ?? {}), ['x', 'y'])
  t.same(Object.keys(merged.Mutation ?? {}), ['z'])

  const registry = createGraphqlRegistry()
  registry.add(a)
  t.throws(() => { registry.add(a) }, /registered twice/)
  t.same(registry.compose().parts.map(part => part.name), ['a'])
  t.throws(() => { registry.add(b) }, /already composed/)
})

t.test('a live filter compares makes as history does (subscriptions keep their own makeKey)', async t => {
  const long = 'X'.repeat(300)
  for (const make of ['John Deere', '  john DEERE ', 'CLAAS', 'Беларус', ' БЕЛАРУС', 'Fendt\t', long, '']) {
    t.equal(liveMakeKey(make), historyMakeKey(make), JSON.stringify(make.slice(0, 20)))
  }
})

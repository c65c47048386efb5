// One source for the answer's shape (src/vision/answer-schema.ts): the SDL must agree with the JSON schema
// sent to the model (enum values, fields, nullability, lists), the schema must keep to strict mode's rules,
// the TypeScript type derived from it must be the SDL's (checked by tsc below), and parseAnswer must
// refuse whatever the schema does not allow.
import t from 'tap'
import {
  buildSchema, getNullableType, isEnumType, isListType, isNonNullType, isObjectType, isScalarType,
  type GraphQLOutputType, type GraphQLSchema
} from 'graphql'
import { loadSchemaSDL } from '../src/graphql/schema.ts'
import {
  ANSWER_SCHEMA, ANSWER_SCHEMA_NAME, AnswerShapeError, CONFIDENCES, EQUIPMENT_KINDS, IMAGE_QUALITIES, VEHICLE_CATEGORIES, parseAnswer,
  type DetectedVehicle, type VisionAnswer
} from '../src/vision/answer-schema.ts'
import type { DetectedVehicle as SchemaDetectedVehicle, Identification as SchemaIdentification } from '../src/graphql/generated/schema-types.ts'
import { chatRequest } from '../src/vision/chat-request.ts'
import { DEFAULT_ANSWER } from './support/fake-azure.ts'

// Compile-time: the type derived from the JSON schema is exactly the SDL's (as codegen sees it), field by field.
type Equal<A, B> = (<T>() => T extends A ? 1 : 2) extends (<T>() => T extends B ? 1 : 2) ? true : false
type FromSdl<T> = Required<Omit<T, '__typename'>>
const vehicleTypesAgree: Equal<DetectedVehicle, FromSdl<SchemaDetectedVehicle>> = true
const answerTypesAgree: Equal<VisionAnswer['answer'], SchemaIdentification['answer']> = true

interface Node {
  type?: string | readonly string[]
  enum?: readonly string[]
  properties?: Record<string, Node>
  required?: readonly string[]
  additionalProperties?: boolean
  items?: Node
  [keyword: string]: unknown
}

const sdl: GraphQLSchema = buildSchema(loadSchemaSDL())

/** Every difference between a JSON schema node and a GraphQL output type, as readable lines. */
function differences (node: Node, type: GraphQLOutputType, at: string, exactFields: boolean): string[] {
  const types = typeof node.type === 'string' ? [node.type] : [...(node.type ?? [])]
  const nullable = types.includes('null')
  const problems: string[] = []
  if (nullable === isNonNullType(type)) {
    problems.push(`${at}: the JSON schema says ${nullable ? 'nullable' : 'required'}, the SDL ${isNonNullType(type) ? 'non-null' : 'nullable'}`)
  }
  const inner = getNullableType(type)
  const jsonType = types.filter(name => name !== 'null')
  if (jsonType.length !== 1) return [...problems, `${at}: expected one JSON type besides null, found ${JSON.stringify(types)}`]
  if (node.enum !== undefined) {
    if (!isEnumType(inner)) return [...problems, `${at}: an enum in the JSON schema, ${String(inner)} in the SDL`]
    const values = inner.getValues().map(value => value.name)
    if (JSON.stringify(values) !== JSON.stringify(node.enum)) {
      problems.push(`${at}: ${inner.name} is ${JSON.stringify(values)} in the SDL, ${JSON.stringify(node.enum)} in the JSON schema`)
    }
    return problems
  }
  switch (jsonType[0]) {
    case 'string':
      if (!isScalarType(inner) || inner.name !== 'String') problems.push(`${at}: a string in the JSON schema, ${String(inner)} in the SDL`)
      return problems
    case 'array':
      if (!isListType(inner)) return [...problems, `${at}: an array in the JSON schema, ${String(inner)} in the SDL`]
      return [...problems, ...differences(node.items ?? {}, inner.ofType, `${at}[]`, true)]
    case 'object': {
      if (!isObjectType(inner)) return [...problems, `${at}: an object in the JSON schema, ${String(inner)} in the SDL`]
      const fields = inner.getFields()
      const properties = node.properties ?? {}
      for (const [name, property] of Object.entries(properties)) {
        const field = fields[name]
        if (field === undefined) problems.push(`${at}.${name}: in the JSON schema, not in the SDL's ${inner.name}`)
        else problems.push(...differences(property, field.type, `${at}.${name}`, true))
      }
      if (exactFields) {
        for (const name of Object.keys(fields)) {
          if (!(name in properties)) problems.push(`${at}.${name}: in the SDL's ${inner.name}, not in the JSON schema`)
        }
      }
      return problems
    }
    default:
      return [...problems, `${at}: JSON type ${String(jsonType[0])} has no counterpart here`]
  }
}

/** What identifyVehicle returns: `Identification!`. */
const identification = (): GraphQLOutputType => {
  const field = sdl.getMutationType()?.getFields().identifyVehicle
  if (field === undefined) throw new Error('no Mutation.identifyVehicle')
  return field.type
}

/** The answer's properties the API does not show: imageQuality is for the flow (ADAPTIVE's second look), not for callers. */
const NOT_IN_API = ['imageQuality']
const shownBySdl = (schema: Node): Node => ({
  ...schema, properties: Object.fromEntries(Object.entries(schema.properties ?? {}).filter(([name]) => !NOT_IN_API.includes(name)))
})

t.test('the SDL agrees with the JSON schema sent to the model', async t => {
  // Identification has more fields (id, image, usage...): only the answer's must agree; DetectedVehicle exactly.
  t.same(differences(shownBySdl(ANSWER_SCHEMA as Node), identification(), 'Identification', false), [], 'no differences')
  t.same(ANSWER_SCHEMA.properties.imageQuality.enum, IMAGE_QUALITIES, 'imageQuality: the three qualities')
  t.ok(ANSWER_SCHEMA.required.includes('imageQuality'), 'imageQuality is required (strict mode)')
  for (const [name, values] of [['VehicleCategory', VEHICLE_CATEGORIES], ['EquipmentKind', EQUIPMENT_KINDS], ['Confidence', CONFIDENCES]] as const) {
    const type = sdl.getType(name)
    t.ok(isEnumType(type), `${name} is an enum`)
    if (isEnumType(type)) t.same(type.getValues().map(value => value.name), values, `${name}: same values, same order`)
  }
  t.ok(vehicleTypesAgree && answerTypesAgree, 'the derived TypeScript types equal the generated SDL types (checked by tsc)')
})

t.test('the comparison catches drift', async t => {
  const vehicle = ANSWER_SCHEMA.properties.vehicles.items
  const vehicles = ANSWER_SCHEMA.properties.vehicles
  const drifted = (properties: Record<string, Node>): Node =>
    ({ ...ANSWER_SCHEMA, properties: { ...ANSWER_SCHEMA.properties, vehicles: { ...vehicles, items: { ...vehicle, properties } } } })
  const cases: Array<[string, Record<string, unknown>, RegExp]> = [
    ['an enum value more', { ...vehicle.properties, category: { type: 'string', enum: [...VEHICLE_CATEGORIES, 'HOVERCRAFT'] } }, /VehicleCategory is/],
    ['make required', { ...vehicle.properties, make: { type: 'string' } }, /make: the JSON schema says required, the SDL nullable/],
    ['kind nullable', { ...vehicle.properties, kind: { type: ['string', 'null'], enum: EQUIPMENT_KINDS } }, /kind: the JSON schema says nullable/],
    ['a field less', { ...vehicle.properties, evidence: undefined }, /evidence: in the SDL's DetectedVehicle, not in the JSON schema/],
    ['a field more', { ...vehicle.properties, colour: { type: 'string' } }, /colour: in the JSON schema, not in the SDL/]
  ]
  for (const [what, properties, expected] of cases) {
    const defined = Object.fromEntries(Object.entries(properties).filter(([, value]) => value !== undefined)) as Record<string, Node>
    t.match(differences(shownBySdl(drifted(defined)), identification(), 'Identification', false).join('\n'), expected, what)
  }
})

t.test('the JSON schema keeps to structured outputs\' strict mode', async t => {
  const unsupported = ['pattern', 'format', 'minLength', 'maxLength', 'minimum', 'maximum', 'minItems', 'maxItems', 'uniqueItems', 'default']
  let objects = 0
  let properties = 0
  let depth = 0
  const walk = (node: Node, at: string, level: number): void => {
    depth = Math.max(depth, level)
    for (const keyword of unsupported) t.notOk(keyword in node, `${at}: no ${keyword}`)
    if (Array.isArray(node.type)) t.same(node.type.slice(1), ['null'], `${at}: a nullable type is [type, "null"]`)
    if (node.type === 'object') {
      objects++
      t.equal(node.additionalProperties, false, `${at}: additionalProperties false`)
      const names = Object.keys(node.properties ?? {})
      properties += names.length
      t.same([...(node.required ?? [])].sort(), names.sort(), `${at}: every property required`)
      for (const name of names) walk((node.properties as Record<string, Node>)[name] as Node, `${at}.${name}`, level + 1)
    }
    if (node.items !== undefined) walk(node.items, `${at}[]`, level + 1)
  }
  walk(ANSWER_SCHEMA as Node, 'answer', 0)
  t.equal(objects, 2)
  t.ok(properties <= 100, `${properties} properties (at most 100)`)
  t.ok(depth <= 5, `${depth} levels of nesting (at most 5)`)
  t.match(ANSWER_SCHEMA_NAME, /^[a-zA-Z0-9_-]{1,64}$/, 'a valid schema name')
})

t.test('the request asks for exactly this schema, strictly', async t => {
  const request = chatRequest('gpt-4o', {
    image: Buffer.alloc(0), mimeType: 'image/png', width: 1, height: 1, detail: 'low', instructions: 'x', language: 'en', signal: new AbortController().signal
  }, 100, 'data:')
  t.same(request.response_format, { type: 'json_schema', json_schema: { name: ANSWER_SCHEMA_NAME, strict: true, schema: ANSWER_SCHEMA } })
})

t.test('parseAnswer takes what the schema allows and refuses the rest, naming where but no value', async t => {
  t.same(parseAnswer(JSON.stringify(DEFAULT_ANSWER)), DEFAULT_ANSWER, 'a full answer')
  t.same(parseAnswer('{"answer":"No vehicle: a cow.","vehicles":[],"imageQuality":"CLEAR"}'),
    { answer: 'No vehicle: a cow.', vehicles: [], imageQuality: 'CLEAR' }, 'no vehicles')
  for (const quality of IMAGE_QUALITIES) {
    t.equal(parseAnswer(JSON.stringify({ ...DEFAULT_ANSWER, imageQuality: quality })).imageQuality, quality, `imageQuality ${quality}`)
  }
  const unknown = { ...DEFAULT_ANSWER.vehicles[0], make: null, model: null, evidence: [] }
  t.same(parseAnswer(JSON.stringify({ answer: 'x', vehicles: [unknown], imageQuality: 'CLEAR' })).vehicles[0], unknown, 'make and model null')

  const vehicle = DEFAULT_ANSWER.vehicles[0] as DetectedVehicle
  const refused: Array<[string, string, RegExp]> = [
    ['not JSON', '{"answer": "cut of', /is not JSON/],
    ['prose', 'A green tractor.', /is not JSON/],
    ['an array', '[]', /is array, not object/],
    ['no vehicles', '{"answer":"x","imageQuality":"CLEAR"}', /lacks the property "vehicles"/],
    ['no imageQuality', '{"answer":"x","vehicles":[]}', /lacks the property "imageQuality"/],
    ['an imageQuality outside the enum', '{"answer":"x","vehicles":[],"imageQuality":"SPACESHIP"}', /at \/imageQuality is not one of 3/],
    ['a null imageQuality', '{"answer":"x","vehicles":[],"imageQuality":null}', /at \/imageQuality is null, not string/],
    ['an extra property', JSON.stringify({ ...DEFAULT_ANSWER, secretSauce: 1 }), /has a property the schema does not allow/],
    ['a category outside the enum', JSON.stringify({ answer: 'x', vehicles: [{ ...vehicle, category: 'SPACESHIP' }], imageQuality: 'CLEAR' }), /at \/vehicles\/0\/category is not one of 20/],
    ['a null kind', JSON.stringify({ answer: 'x', vehicles: [{ ...vehicle, kind: null }], imageQuality: 'CLEAR' }), /at \/vehicles\/0\/kind is null, not string/],
    ['a number as make', JSON.stringify({ answer: 'x', vehicles: [{ ...vehicle, make: 42 }], imageQuality: 'CLEAR' }), /make is number, not string or null/],
    ['evidence not strings', JSON.stringify({ answer: 'x', vehicles: [{ ...vehicle, evidence: [{ text: 'SPACESHIP' }] }], imageQuality: 'CLEAR' }), /evidence\/0 is object/],
    ['a missing confidence', JSON.stringify({ answer: 'x', vehicles: [{ ...vehicle, confidence: undefined }], imageQuality: 'CLEAR' }), /lacks the property "confidence"/]
  ]
  for (const [what, content, message] of refused) {
    t.throws(() => parseAnswer(content), message, what)
    try { parseAnswer(content) } catch (err) {
      t.ok(err instanceof AnswerShapeError, `${what}: an AnswerShapeError`)
      t.notMatch((err as Error).message, /SPACESHIP|secretSauce|cut of/, `${what}: the message carries no value`)
    }
  }
})

t.test('parseAnswer: blank means unknown (empty make or model → null, blank evidence dropped, text trimmed)', async t => {
  const vehicle = { category: 'TRACTOR', kind: 'MACHINE', make: '  ', model: ' 6R 250 ', confidence: 'MEDIUM', evidence: [' green livery ', '', '  '] }
  const parsed = parseAnswer(JSON.stringify({ answer: ' A tractor. ', vehicles: [vehicle], imageQuality: 'UNCLEAR' }))
  t.same(parsed, {
    answer: 'A tractor.',
    vehicles: [{ category: 'TRACTOR', kind: 'MACHINE', make: null, model: '6R 250', confidence: 'MEDIUM', evidence: ['green livery'] }],
    imageQuality: 'UNCLEAR'
  })
})

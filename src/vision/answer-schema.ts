// What the model must answer, declared once: this JSON schema is sent to Azure OpenAI as the structured
// output's schema (strict mode), the TypeScript type `VisionAnswer` is derived from it, `parseAnswer`
// checks the model's JSON against it, and test/answer-schema.test.ts checks that the SDL's
// `DetectedVehicle`, its enums and `Identification.answer`/`vehicles` agree with it.
//
// Strict mode (Azure OpenAI structured outputs): every property is required (a missing value is
// `["string", "null"]`), every object has `additionalProperties: false`, and there is no `pattern`,
// `format`, `minLength`/`maxLength`, `minimum`/`maximum`, `minItems`/`maxItems` or `uniqueItems`.

/** The kinds of agricultural equipment, after ISO 11783's device classes and AgGateway ADAPT's machine and implement types. */
export const VEHICLE_CATEGORIES = [
  'TRACTOR',
  'COMBINE_HARVESTER',
  'FORAGE_HARVESTER',
  'SELF_PROPELLED_SPRAYER',
  'WINDROWER',
  'COTTON_HARVESTER',
  'SUGARCANE_HARVESTER',
  'ROOT_CROP_HARVESTER',
  'LOADER_TELEHANDLER',
  'UTILITY_VEHICLE',
  'TILLAGE_IMPLEMENT',
  'PLANTER_SEEDER',
  'FERTILIZER_SPREADER',
  'SLURRY_MANURE_APPLICATOR',
  'TRAILED_SPRAYER',
  'BALER_HAY_TOOL',
  'TRAILER_GRAIN_CART',
  'FEEDER_MIXER',
  'IRRIGATION_SYSTEM',
  'OTHER'
] as const

/** A self-propelled machine, or an implement that a machine pulls, carries or drives. */
export const EQUIPMENT_KINDS = ['MACHINE', 'IMPLEMENT'] as const

export const CONFIDENCES = ['HIGH', 'MEDIUM', 'LOW'] as const

/**
 * Whether the photo as sent let the model see enough: TOO_SMALL (the vehicle or its badges are too few pixels),
 * UNCLEAR (blurred, dark, hidden). What an ADAPTIVE identification reads to decide on a closer look.
 */
export const IMAGE_QUALITIES = ['CLEAR', 'TOO_SMALL', 'UNCLEAR'] as const

/** `json_schema.name` in the request: letters, digits, `_` and `-`. */
export const ANSWER_SCHEMA_NAME = 'agricultural_vehicle_identification'

export const ANSWER_SCHEMA = {
  type: 'object',
  additionalProperties: false,
  required: ['answer', 'vehicles', 'imageQuality'],
  properties: {
    answer: {
      type: 'string',
      description: 'A short answer for a person, in the requested language: what the photo shows; if it shows no agricultural ' +
        'vehicle, why not; how sure you are.'
    },
    vehicles: {
      type: 'array',
      description: 'Each agricultural machine or implement visible in the photo, the most prominent first; empty if there is none.',
      items: {
        type: 'object',
        additionalProperties: false,
        required: ['category', 'kind', 'make', 'model', 'confidence', 'evidence'],
        properties: {
          category: {
            type: 'string',
            enum: VEHICLE_CATEGORIES,
            description: 'What it is. OTHER when no other category fits.'
          },
          kind: {
            type: 'string',
            enum: EQUIPMENT_KINDS,
            description: 'MACHINE if it is self-propelled (tractor, combine, self-propelled sprayer, ...); IMPLEMENT if it is pulled, ' +
              'mounted or driven by a machine (plough, seed drill, trailed sprayer, baler, trailer, ...).'
          },
          make: {
            type: ['string', 'null'],
            description: 'The manufacturer (e.g. "John Deere", "CLAAS", "Беларус"), as read from badges or recognised from the ' +
              'livery; null if it cannot be told from the photo.'
          },
          model: {
            type: ['string', 'null'],
            description: 'The model or model series (e.g. "6R 250", "Lexion 8900"); null if it cannot be told from the photo.'
          },
          confidence: {
            type: 'string',
            enum: CONFIDENCES,
            description: 'HIGH when badges or model lettering are legible; MEDIUM when livery and shape point to it; LOW when it is a guess.'
          },
          evidence: {
            type: 'array',
            items: { type: 'string' },
            description: 'The visible cues, in the requested language: badge or model text, livery colours, cab, bonnet or ' +
              'header shape, and so on. Only what can be seen.'
          }
        }
      }
    },
    imageQuality: {
      type: 'string',
      enum: IMAGE_QUALITIES,
      description: 'CLEAR when the image shows enough to identify what is in it; TOO_SMALL when the vehicles, badges or ' +
        'lettering are too few pixels to read; UNCLEAR when it is blurred, dark, hidden or cut off.'
    }
  }
} as const

// The TypeScript type, derived from the schema (only the shapes strict mode and this schema use).
type Primitive<T> = T extends 'string' ? string : T extends 'number' ? number : T extends 'integer' ? number :
  T extends 'boolean' ? boolean : T extends 'null' ? null : never

export type FromSchema<S> =
  S extends { enum: ReadonlyArray<infer E> } ? E
    : S extends { type: 'object', properties: infer P } ? { -readonly [K in keyof P]: FromSchema<P[K]> }
      : S extends { type: 'array', items: infer I } ? Array<FromSchema<I>>
        : S extends { type: ReadonlyArray<infer T> } ? Primitive<T>
          : S extends { type: infer T } ? Primitive<T>
            : never

export type VisionAnswer = FromSchema<typeof ANSWER_SCHEMA>
export type DetectedVehicle = VisionAnswer['vehicles'][number]
export type VehicleCategory = typeof VEHICLE_CATEGORIES[number]
export type EquipmentKind = typeof EQUIPMENT_KINDS[number]
export type Confidence = typeof CONFIDENCES[number]
export type ImageQuality = typeof IMAGE_QUALITIES[number]

/** What `parseAnswer` found wrong: where in the JSON (a JSON pointer) and what, never the model's text. */
export class AnswerShapeError extends Error {
  readonly at: string
  constructor (at: string, problem: string) {
    super(`the model's answer ${at === '' ? '' : `at ${at} `}${problem}`)
    this.name = 'AnswerShapeError'
    this.at = at
  }
}

/**
 * The model's message content as a `VisionAnswer`, checked against ANSWER_SCHEMA itself (so the check
 * cannot drift from what the model was asked for). Throws AnswerShapeError when it is not JSON or not that shape.
 */
export function parseAnswer (content: string): VisionAnswer {
  let value: unknown
  try {
    value = JSON.parse(content)
  } catch {
    throw new AnswerShapeError('', 'is not JSON')
  }
  check(ANSWER_SCHEMA, value, '')
  return tidy(value as VisionAnswer)
}

/** Blank means unknown: an empty make or model becomes null, blank evidence is dropped, text is trimmed. */
function tidy (answer: VisionAnswer): VisionAnswer {
  const text = (value: string | null): string | null => value === null || value.trim() === '' ? null : value.trim()
  return {
    answer: answer.answer.trim(),
    vehicles: answer.vehicles.map(vehicle => ({
      ...vehicle,
      make: text(vehicle.make),
      model: text(vehicle.model),
      evidence: vehicle.evidence.map(cue => cue.trim()).filter(cue => cue !== '')
    })),
    imageQuality: answer.imageQuality
  }
}

interface SchemaNode {
  type?: string | readonly string[]
  enum?: readonly string[]
  properties?: Record<string, SchemaNode>
  required?: readonly string[]
  additionalProperties?: boolean
  items?: SchemaNode
}

function check (schema: SchemaNode, value: unknown, at: string): void {
  const types = typeof schema.type === 'string' ? [schema.type] : schema.type ?? []
  const actual = value === null ? 'null' : Array.isArray(value) ? 'array' : typeof value
  if (!types.includes(actual)) throw new AnswerShapeError(at, `is ${actual}, not ${types.join(' or ')}`)
  if (schema.enum !== undefined && !schema.enum.includes(value as string)) {
    throw new AnswerShapeError(at, `is not one of ${schema.enum.length} allowed values`)
  }
  if (actual === 'array') {
    (value as unknown[]).forEach((item, i) => { if (schema.items) check(schema.items, item, `${at}/${i}`) })
  }
  if (actual === 'object') {
    const record = value as Record<string, unknown>
    const properties = schema.properties ?? {}
    for (const name of schema.required ?? []) {
      if (!Object.hasOwn(record, name)) throw new AnswerShapeError(at, `lacks the property "${name}"`)
    }
    for (const [name, item] of Object.entries(record)) {
      const property = properties[name]
      if (property === undefined) {
        if (schema.additionalProperties === false) throw new AnswerShapeError(at, 'has a property the schema does not allow')
        continue
      }
      check(property, item, `${at}/${name}`)
    }
  }
}

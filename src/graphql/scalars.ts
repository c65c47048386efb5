// Custom scalars. `Upload` values only come from a multipart request (see upload.ts): a client
// cannot forge one with JSON, since only our hook creates `Upload` instances.
import { GraphQLScalarType, Kind } from 'graphql'
import { BadUserInputError } from '../errors.ts'
import { Upload } from './upload.ts'

const notAFile = 'The `Upload` value must be a file sent in a GraphQL multipart request (map the file part to this variable).'

export const UploadScalar = new GraphQLScalarType<Upload, never>({
  name: 'Upload',
  parseValue (value) {
    if (value instanceof Upload) return value
    throw new BadUserInputError(notAFile)
  },
  parseLiteral () {
    throw new BadUserInputError(notAFile)
  },
  serialize () {
    throw new Error('Upload is an input-only scalar')
  }
})

export const DateTimeScalar = new GraphQLScalarType<Date, string>({
  name: 'DateTime',
  serialize (value) {
    if (value instanceof Date) return value.toISOString()
    throw new TypeError('DateTime cannot represent a non-Date value')
  },
  parseValue (value) {
    const date = typeof value === 'string' ? new Date(value) : undefined
    if (date === undefined || Number.isNaN(date.getTime())) throw new BadUserInputError('DateTime must be an ISO-8601 string.')
    return date
  },
  parseLiteral (ast) {
    const date = ast.kind === Kind.STRING ? new Date(ast.value) : undefined
    if (date === undefined || Number.isNaN(date.getTime())) throw new BadUserInputError('DateTime must be an ISO-8601 string.')
    return date
  }
})

// GENERATED FILE, DO NOT EDIT: made from src/**/*.graphql by `npm run codegen` (codegen.ts).
// `npm test` fails when it is stale (`npm run codegen:check`).
/* eslint-disable */
export type Maybe<T> = T | null;
export type InputMaybe<T> = Maybe<T>;
/** All built-in and custom scalars, mapped to their actual values */
export type Scalars = {
  ID: { input: string; output: string; }
  String: { input: string; output: string; }
  Boolean: { input: boolean; output: boolean; }
  Int: { input: number; output: number; }
  Float: { input: number; output: number; }
  /** An instant in time, serialized as an ISO-8601 string in UTC, e.g. `2026-11-27T13:05:00.000Z`. */
  DateTime: { input: string; output: string; }
  /**
   * A file sent as a part of a GraphQL multipart request
   * (https://github.com/jaydenseric/graphql-multipart-request-spec).
   * Only usable as a variable: put `null` in `operations` and map the file part to it.
   */
  Upload: { input: Blob; output: Blob; }
};

export type BulkItemStatus =
  /** The job was cancelled before it was answered. */
  | 'CANCELLED'
  /** Failed: `code` says why (the same codes as identifyVehicle). */
  | 'FAILED'
  /** Not yet prepared. */
  | 'PENDING'
  /** Prepared; waiting to be answered. */
  | 'PREPARED'
  /** Sent to Azure's Global Batch; waiting for its answer. */
  | 'SUBMITTED'
  /** Answered: its `identification` is in history. */
  | 'SUCCEEDED';

export type BulkJobMode =
  /** Azure OpenAI's Global Batch API: answered within 24 hours at about half the price. */
  | 'GLOBAL_BATCH'
  /** The normal path, at a bounded share of capacity, behind interactive callers. */
  | 'ONLINE';

export type BulkJobStatus =
  /** Cancelled: the photos not yet answered ended as CANCELLED. */
  | 'CANCELLED'
  /** Every photo has an outcome (succeeded or failed). */
  | 'COMPLETED'
  /** The job could not be worked at all (`code` says why); its photos are not answered. */
  | 'FAILED'
  /** Its photos are being inspected, stripped of metadata and downscaled. */
  | 'PREPARING'
  /** Received; its photos are about to be prepared. */
  | 'RECEIVED'
  /** Being answered. */
  | 'RUNNING'
  /** Handed to Azure's Global Batch; waiting for it to start. */
  | 'SUBMITTED';

/** How sure the model is. */
export type Confidence =
  /** Badges or model lettering are legible. */
  | 'HIGH'
  /** A guess; every simulated result is LOW. */
  | 'LOW'
  /** The livery and shape point to it. */
  | 'MEDIUM';

/** Machine or implement, as farm-management systems file equipment (e.g. John Deere's `Machine` and `Implement`). */
export type EquipmentKind =
  /** Pulled, mounted or driven by a machine: a plough, seed drill, trailed sprayer, baler, trailer. */
  | 'IMPLEMENT'
  /** Self-propelled: a tractor, combine, self-propelled sprayer, loader, utility vehicle, irrigation system. */
  | 'MACHINE';

/**
 * The stable `extensions.code` of every error the service returns on purpose (src/errors.ts: each error class
 * names one). Clients branch on it, never on the message. No field returns it: it documents `extensions.code`
 * and gives clients a type to generate.
 */
export type ErrorCode =
  /** Credentials could not be checked or obtained just now (Entra ID or the managed identity unreachable): try again later. */
  | 'AUTH_UNAVAILABLE'
  /** The HTTP request is malformed (no query, a wrong method, a missing CSRF preflight header). */
  | 'BAD_REQUEST'
  /** An argument or the image cannot be used (`extensions.argument`, `extensions.reason`). */
  | 'BAD_USER_INPUT'
  /** The client went away before the answer was ready. */
  | 'CLIENT_CLOSED_REQUEST'
  /** The vision backend's content filter refused the photo or the instructions. */
  | 'CONTENT_FILTERED'
  /** Valid credentials that are not allowed to do this. */
  | 'FORBIDDEN'
  /** The GraphQL document does not parse. */
  | 'GRAPHQL_PARSE_FAILED'
  /** The GraphQL document is invalid for the schema or exceeds the query limits (depth, cost, aliases). */
  | 'GRAPHQL_VALIDATION_FAILED'
  /** A request with this Idempotency-Key is still running: try again after `extensions.retryAfter` seconds. */
  | 'IDEMPOTENCY_KEY_IN_USE'
  /** This Idempotency-Key was already used with another image or other arguments. */
  | 'IDEMPOTENCY_KEY_REUSED'
  /** An unexpected error on the server; the request id in the log tells which. */
  | 'INTERNAL_SERVER_ERROR'
  /** The model declined to answer; its words, cut short, are in `extensions.refusal`. */
  | 'MODEL_REFUSED'
  /** The resource (e.g. a thumbnail) does not exist. */
  | 'NOT_FOUND'
  /** The service is at capacity (slots, queue, upload bytes or memory pressure): try again after `extensions.retryAfter` seconds. */
  | 'OVERLOADED'
  /** The request body or the uploaded file is larger than the server accepts (`extensions.maxBytes`). */
  | 'PAYLOAD_TOO_LARGE'
  /** The caller sent more requests than its rate limit allows: try again after `extensions.retryAfter` seconds. */
  | 'RATE_LIMITED'
  /** The history database cannot be reached or history is off: identifications go on, history queries fail. */
  | 'STORAGE_UNAVAILABLE'
  /** The caller already holds as many subscriptions as it may (`extensions.limit`). */
  | 'TOO_MANY_SUBSCRIPTIONS'
  /** No credentials, or credentials the service does not accept. */
  | 'UNAUTHENTICATED'
  /** The upload stalled or arrived too slowly and was cut off: send it again. */
  | 'UPLOAD_TIMEOUT'
  /** The vision backend refused the service's credentials (a server configuration problem). */
  | 'UPSTREAM_AUTH'
  /** The model's answer was not of the requested shape, twice. */
  | 'UPSTREAM_INVALID_RESPONSE'
  /** The vision backend throttled the request: try again after `extensions.retryAfter` seconds. */
  | 'UPSTREAM_RATE_LIMITED'
  /** The vision backend did not answer in time: try again later. */
  | 'UPSTREAM_TIMEOUT'
  /** The vision backend could not be reached or failed: try again later. */
  | 'UPSTREAM_UNAVAILABLE'
  /** The webhook endpoint URL is refused (not https, or an internal address; `extensions.reason`). */
  | 'WEBHOOK_URL_REFUSED';

/** Narrows `identifications`: every field given must match. */
export type IdentificationFilter = {
  /** Only this bulk job's identifications. */
  bulkJobId?: InputMaybe<Scalars['ID']['input']>;
  /** Another caller's identifications (its `callerId`); needs the ReadAll role. */
  caller?: InputMaybe<Scalars['String']['input']>;
  /** Identifications in which a vehicle of this category was seen. */
  category?: InputMaybe<VehicleCategory>;
  /** Made at or after this instant. */
  from?: InputMaybe<Scalars['DateTime']['input']>;
  /**
   * Identifications in which a vehicle of this make was seen (the whole name, case-insensitive: `john deere` finds
   * `John Deere`). With `category`: one vehicle of both (a John Deere combine, not a John Deere tractor beside a combine).
   */
  make?: InputMaybe<Scalars['String']['input']>;
  /** Made before this instant. */
  to?: InputMaybe<Scalars['DateTime']['input']>;
};

/** How closely the model looks at the image, and what the server sends it. */
export type ImageDetail =
  /** Ask at LOW first; again at HIGH only when the first answer is unsure (no vehicle, low confidence, unclear photo). */
  | 'ADAPTIVE'
  /** Let the model choose; the image is prepared as for HIGH. */
  | 'AUTO'
  /** Fit within 2048×2048, then the short side at most 768 pixels. */
  | 'HIGH'
  /** Fit within 512×512; a fixed 85 tokens. */
  | 'LOW';

/** How `usage` groups its buckets. */
export type UsageGrouping =
  /** One bucket per caller; the key is its `callerId`. */
  | 'CALLER'
  /** One bucket per UTC day; the key is the date (`2026-11-30`). */
  | 'DAY'
  /** One bucket per deployment or model; the key is its name (empty for identifications that failed before a model answered). */
  | 'MODEL';

/**
 * The kind of agricultural equipment, following ISO 11783's device classes and AgGateway ADAPT's machine and
 * implement types (the README maps each value to them, to farmOS and to John Deere's equipment types).
 */
export type VehicleCategory =
  /** A baler, mower, tedder, rake or bale wrapper. */
  | 'BALER_HAY_TOOL'
  /** A combine harvester (grain, maize, rice), with or without its header. */
  | 'COMBINE_HARVESTER'
  /** A cotton picker or cotton stripper. */
  | 'COTTON_HARVESTER'
  /** A feed mixer wagon or feeder. */
  | 'FEEDER_MIXER'
  /** A fertilizer spreader (dry or liquid) or an anhydrous ammonia applicator. */
  | 'FERTILIZER_SPREADER'
  /** A self-propelled forage harvester (chopper). */
  | 'FORAGE_HARVESTER'
  /** An irrigation system: centre pivot, linear move, hose reel. */
  | 'IRRIGATION_SYSTEM'
  /** A wheel loader, telehandler, skid steer or front loader working on a farm. */
  | 'LOADER_TELEHANDLER'
  /** Agricultural equipment that fits no other category. */
  | 'OTHER'
  /** A planter, seed drill or air seeder (with its air cart). */
  | 'PLANTER_SEEDER'
  /** A harvester of potatoes, sugar beet or other root crops, self-propelled or trailed. */
  | 'ROOT_CROP_HARVESTER'
  /** A self-propelled crop sprayer. */
  | 'SELF_PROPELLED_SPRAYER'
  /** A slurry tanker, slurry injector or manure spreader. */
  | 'SLURRY_MANURE_APPLICATOR'
  /** A sugarcane harvester. */
  | 'SUGARCANE_HARVESTER'
  /** A soil-tillage implement: plough, cultivator, disc harrow, power harrow, subsoiler, roller. */
  | 'TILLAGE_IMPLEMENT'
  /** A tractor of any size: row-crop, utility, compact, tracked, articulated. */
  | 'TRACTOR'
  /** A trailed or mounted (not self-propelled) sprayer. */
  | 'TRAILED_SPRAYER'
  /** A farm trailer, grain cart or chaser bin. */
  | 'TRAILER_GRAIN_CART'
  /** A utility vehicle, side-by-side, ATV or farm pickup. */
  | 'UTILITY_VEHICLE'
  /** A self-propelled windrower or swather. */
  | 'WINDROWER';

/** Where answers come from. */
export type VisionBackend =
  /** An Azure OpenAI vision deployment, reached with a Microsoft Entra ID token. */
  | 'AZURE_OPENAI'
  /** No model: a built-in stand-in for development that says it is simulated and reports only what it can measure. */
  | 'SIMULATED';

/** Whether a deployment takes requests. */
export type VisionBackendRoutingState =
  /** Takes requests. */
  | 'CLOSED'
  /** Cooled down: the next request is a probe; its success closes the breaker, its failure opens it again. */
  | 'HALF_OPEN'
  /** Answered 429: no request goes to it until `heldUntil`. */
  | 'HELD'
  /** Failed too often: no request goes to it until its cool-down (`VISION_BREAKER_COOLDOWN_MS`) ends. */
  | 'OPEN';

export type WebhookDeliveryState =
  /** Given up: every attempt of the schedule failed, the endpoint answered 410, or the identification was withdrawn first. */
  | 'FAILED'
  /** Waiting for its next attempt. */
  | 'PENDING'
  /** An attempt was answered with a 2xx. */
  | 'SUCCEEDED';

/** What an endpoint may subscribe to (the body's `type`). */
export type WebhookEvent =
  /** An identification succeeded (`identification.completed`): `data` is the Identification as this API shows it. */
  | 'IDENTIFICATION_COMPLETED'
  /** An identification failed (`identification.failed`): `data` has its id, callerId, code, language, backend, durationMs, createdAt. */
  | 'IDENTIFICATION_FAILED';

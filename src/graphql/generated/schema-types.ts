// GENERATED FILE, DO NOT EDIT: made from src/**/*.graphql by `npm run codegen` (codegen.ts).
// `npm test` fails when it is stale (`npm run codegen:check`).
/* eslint-disable */
import type { Upload } from '../upload.ts';
import type { GraphQLResolveInfo, GraphQLScalarType, GraphQLScalarTypeConfig } from 'graphql';
import type { AppContext } from '../context.ts';
export type Maybe<T> = T | null;
export type InputMaybe<T> = Maybe<T>;
export type RequireFields<T, K extends keyof T> = Omit<T, K> & { [P in K]-?: NonNullable<T[P]> };
/** All built-in and custom scalars, mapped to their actual values */
export type Scalars = {
  ID: { input: string; output: string; }
  String: { input: string; output: string; }
  Boolean: { input: boolean; output: boolean; }
  Int: { input: number; output: number; }
  Float: { input: number; output: number; }
  /** An instant in time, serialized as an ISO-8601 string in UTC, e.g. `2026-11-27T13:05:00.000Z`. */
  DateTime: { input: Date; output: Date; }
  /**
   * A file sent as a part of a GraphQL multipart request
   * (https://github.com/jaydenseric/graphql-multipart-request-spec).
   * Only usable as a variable: put `null` in `operations` and map the file part to it.
   */
  Upload: { input: Upload; output: never; }
};

/** One photo of a bulk job. */
export type BulkItem = {
  __typename?: 'BulkItem';
  /** Why it failed (the same codes as identifyVehicle); null unless FAILED or CANCELLED. */
  code?: Maybe<Scalars['String']['output']>;
  /** Its identification once SUCCEEDED; null otherwise. */
  identification?: Maybe<Identification>;
  /** Its path in the archive (or `images[i]`). */
  name: Scalars['String']['output'];
  status: BulkItemStatus;
};

export type BulkItemConnection = {
  __typename?: 'BulkItemConnection';
  edges: Array<BulkItemEdge>;
  pageInfo: PageInfo;
};

export type BulkItemEdge = {
  __typename?: 'BulkItemEdge';
  cursor: Scalars['String']['output'];
  node: BulkItem;
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

/** A bulk job: its photos identified in the background. */
export type BulkJob = {
  __typename?: 'BulkJob';
  /** Why the whole job failed (e.g. the archive could not be read); null otherwise. */
  code?: Maybe<Scalars['String']['output']>;
  /** When it finished (completed, failed or cancelled); null before. */
  completedAt?: Maybe<Scalars['DateTime']['output']>;
  counts: BulkJobCounts;
  createdAt: Scalars['DateTime']['output'];
  id: Scalars['ID']['output'];
  /** Its photos in archive order, `first` (at most 100) after the cursor `after`, of one status or all. */
  items: BulkItemConnection;
  mode: BulkJobMode;
  status: BulkJobStatus;
  /** Tokens its answered photos used, and what they cost at the server's prices. */
  usage: BulkJobUsage;
};


/** A bulk job: its photos identified in the background. */
export type BulkJobItemsArgs = {
  after?: InputMaybe<Scalars['String']['input']>;
  first?: InputMaybe<Scalars['Int']['input']>;
  status?: InputMaybe<BulkItemStatus>;
};

export type BulkJobConnection = {
  __typename?: 'BulkJobConnection';
  edges: Array<BulkJobEdge>;
  pageInfo: PageInfo;
};

export type BulkJobCounts = {
  __typename?: 'BulkJobCounts';
  cancelled: Scalars['Int']['output'];
  failed: Scalars['Int']['output'];
  /** Not yet answered (pending, prepared or submitted). */
  pending: Scalars['Int']['output'];
  succeeded: Scalars['Int']['output'];
  total: Scalars['Int']['output'];
};

export type BulkJobEdge = {
  __typename?: 'BulkJobEdge';
  cursor: Scalars['String']['output'];
  node: BulkJob;
};

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

export type BulkJobUsage = {
  __typename?: 'BulkJobUsage';
  completionTokens: Scalars['Int']['output'];
  /** At VISION_BATCH_PRICE_*_PER_MTOK in GLOBAL_BATCH mode, else VISION_PRICE_*_PER_MTOK; null when no prices are set. */
  estimatedCost?: Maybe<Scalars['Float']['output']>;
  promptTokens: Scalars['Int']['output'];
};

/** How sure the model is. */
export type Confidence =
  /** Badges or model lettering are legible. */
  | 'HIGH'
  /** A guess. The simulated backend says LOW, or MEDIUM at a LOW look of a sent image 300 pixels or more on its short side. */
  | 'LOW'
  /** The livery and shape point to it. */
  | 'MEDIUM';

/**
 * One machine or implement seen in the photo. The same shape is what the model is asked for (structured outputs),
 * so every field is always filled as documented.
 */
export type DetectedVehicle = {
  __typename?: 'DetectedVehicle';
  /** What it is. */
  category: VehicleCategory;
  /** How sure the model is of this vehicle's category, make and model. */
  confidence: Confidence;
  /** The visible cues the identification rests on (badge or model text, livery colours, cab, bonnet or header shape), in the requested language. */
  evidence: Array<Scalars['String']['output']>;
  /** Whether it is a self-propelled machine or an implement pulled, mounted or driven by one. */
  kind: EquipmentKind;
  /** The manufacturer (e.g. `John Deere`, `CLAAS`, `Беларус`), as read from badges or recognised from the livery; null when it cannot be told from the photo. */
  make?: Maybe<Scalars['String']['output']>;
  /** The model or model series (e.g. `6R 250`, `Lexion 8900`); null when it cannot be told from the photo. */
  model?: Maybe<Scalars['String']['output']>;
};

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

/** What the vision model said about one photo. */
export type Identification = {
  __typename?: 'Identification';
  /**
   * The model's answer for a person, in the requested language: what the photo shows and how sure the model is.
   * When `vehicles` is empty, it says why (no agricultural vehicle in the photo, too blurred, ...).
   */
  answer: Scalars['String']['output'];
  /** The backend that produced the answer. */
  backend: VisionBackend;
  /** Which of several Azure OpenAI deployments answered (its name in `AZURE_OPENAI_BACKENDS`, `default` for a single deployment); for a cached answer, the one that answered first. Null for the simulated backend. */
  backendName?: Maybe<Scalars['String']['output']>;
  /** The bulk job this identification was part of; null for any other. */
  bulkJobId?: Maybe<Scalars['ID']['output']>;
  /** True when this answer was served from the result cache (the same photo and question answered earlier), with no model call; its `usage` is then null. */
  cached: Scalars['Boolean']['output'];
  /** The id of the caller who asked (Entra object or app id, or the API key's id): what `IdentificationFilter.caller` matches. */
  callerId: Scalars['String']['output'];
  /** When the identification finished. */
  createdAt: Scalars['DateTime']['output'];
  /** LOW or HIGH for ADAPTIVE: what the answer came from; otherwise the detail sent. */
  detailUsed: ImageDetail;
  /** Time spent on the identification, in milliseconds, upload excluded. */
  durationMs: Scalars['Int']['output'];
  /** A fresh unique id for this identification, also written to the server's log. */
  id: Scalars['ID']['output'];
  /** What the server saw in the uploaded image. */
  image: ImageInfo;
  /** The language the answer was asked for (BCP-47 tag). */
  language: Scalars['String']['output'];
  /** How many times the model was asked to look: 1, or 2 when an ADAPTIVE identification took a second, closer look. */
  looks: Scalars['Int']['output'];
  /** The deployment or model that answered. */
  model: Scalars['String']['output'];
  /**
   * A small JPEG of the photo as the model saw it (longest side 256 pixels, no metadata) at a signed URL that expires
   * (15 minutes by default), so that an `<img src>` works without an Authorization header. Null when there is none:
   * thumbnails are made after the answer and may be skipped under load, and none exists with HISTORY=off.
   */
  thumbnailUrl?: Maybe<Scalars['String']['output']>;
  /** Tokens the model used; null when the backend reports none (simulated). */
  usage?: Maybe<TokenUsage>;
  /**
   * Each agricultural machine or implement the model saw, the most prominent first, field by field, ready to file
   * (e.g. as an equipment asset). Empty when the photo shows none; `answer` then says why.
   */
  vehicles: Array<DetectedVehicle>;
};

/** A page of identifications (Relay cursor connection). */
export type IdentificationConnection = {
  __typename?: 'IdentificationConnection';
  edges: Array<IdentificationEdge>;
  pageInfo: PageInfo;
};

/** One identification in a page, with the cursor of its position. */
export type IdentificationEdge = {
  __typename?: 'IdentificationEdge';
  /** Pass it as `after` to get the identifications after this one. */
  cursor: Scalars['String']['output'];
  node: Identification;
};

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

/** The uploaded image as the server sniffed it from its bytes (the client's file name and content type are ignored). */
export type ImageInfo = {
  __typename?: 'ImageInfo';
  /** Size of the upload in bytes. */
  bytes: Scalars['Int']['output'];
  /** The image's token cost by GPT-4o's published tile rule (85 + 170 per 512-pixel tile for high detail and AUTO, 85 for low). */
  estimatedImageTokens: Scalars['Int']['output'];
  /** Height in pixels, as stored in the file (before any EXIF rotation). */
  height?: Maybe<Scalars['Int']['output']>;
  /** The image type sniffed from the bytes: image/jpeg, image/png, image/webp or image/gif. */
  mimeType: Scalars['String']['output'];
  /**
   * Size in bytes of the image sent to the model, after orientation, metadata stripping and downscaling; null when it
   * was not encoded: ADAPTIVE's LOW look on the SIMULATED backend, which reads no pixels, is told the image's size and
   * type (the other fields here) instead of being sent one.
   */
  sentBytes?: Maybe<Scalars['Int']['output']>;
  /** Height in pixels of the image sent to the model (upright). */
  sentHeight: Scalars['Int']['output'];
  /** The type of the image sent to the model: the upload's own when sent unchanged, else image/jpeg. */
  sentMimeType: Scalars['String']['output'];
  /** Width in pixels of the image sent to the model (upright). */
  sentWidth: Scalars['Int']['output'];
  /** SHA-256 of the uploaded bytes, hex-encoded. */
  sha256: Scalars['String']['output'];
  /** Width in pixels, as stored in the file (before any EXIF rotation). */
  width?: Maybe<Scalars['Int']['output']>;
};

export type Mutation = {
  __typename?: 'Mutation';
  /** Cancels a job that has not finished: items not yet answered end as CANCELLED. The caller's own; anyone's with the Admin role. Null when there is no such job. */
  cancelBulkJob?: Maybe<BulkJob>;
  /**
   * Starts a bulk job from a ZIP archive of photos (`archive`) or, for a few, the files themselves (`images`, at most
   * 100): exactly one of the two. Send it as a multipart request with the header `graphql-require-preflight: 1`.
   * Returns at once, with status RECEIVED or later; every photo becomes an `Identification` (with this job's
   * `bulkJobId`). A caller has at most `BULK_MAX_ACTIVE_JOBS_PER_CALLER` jobs not finished (RATE_LIMITED beyond).
   */
  createBulkJob: BulkJob;
  /**
   * Registers an endpoint: `url` must be https:// and must not be (nor resolve to) a private, loopback, link-local or
   * otherwise internal address (else WEBHOOK_URL_REFUSED). The signing secret (`whsec_…`) is in the answer, and only
   * there: keep it. At most WEBHOOK_MAX_ENDPOINTS endpoints (20 by default). Admin only.
   */
  createWebhookEndpoint: WebhookEndpointWithSecret;
  /**
   * Withdraws an identification, e.g. when a farmer takes back a photo: its answer, vehicles, image facts and thumbnail
   * are erased at once and it is no longer listed, fetched or served from the result cache. The caller's own;
   * anyone's with the ReadAll role. True when it was removed; false when there was none the caller may remove.
   * Usage keeps what it cost.
   */
  deleteIdentification: Scalars['Boolean']['output'];
  /**
   * Deletes an endpoint, its pending deliveries (none is sent after this returns) and its delivery log.
   * False when there was no such endpoint. Admin only.
   */
  deleteWebhookEndpoint: Scalars['Boolean']['output'];
  /**
   * Identify the agricultural vehicle (tractor, combine harvester, sprayer, ...) in a photo.
   * Send it as a multipart request with the header `graphql-require-preflight: 1`.
   */
  identifyVehicle: Identification;
  /**
   * Sends a delivery's event again, now, as a new delivery with the same `webhook-id` (the receiver's idempotency key).
   * Null when there is no such delivery. Admin only.
   */
  redeliverWebhook?: Maybe<WebhookDelivery>;
  /**
   * A new signing secret, in the answer only. For 24 hours (WEBHOOK_ROTATION_OVERLAP_S) every call carries both
   * signatures, the old and the new, in `webhook-signature`, so that the receiver can switch without losing a call.
   * Null when there is no such endpoint. Admin only.
   */
  rotateWebhookSecret?: Maybe<WebhookEndpointWithSecret>;
  /**
   * Changes what is given. `enabled: true` re-enables a disabled endpoint (its pending deliveries resume);
   * `enabled: false` pauses it. Null when there is no such endpoint. Admin only.
   */
  updateWebhookEndpoint?: Maybe<WebhookEndpoint>;
};


export type MutationCancelBulkJobArgs = {
  id: Scalars['ID']['input'];
};


export type MutationCreateBulkJobArgs = {
  archive?: InputMaybe<Scalars['Upload']['input']>;
  detail?: InputMaybe<ImageDetail>;
  images?: InputMaybe<Array<Scalars['Upload']['input']>>;
  instructions?: InputMaybe<Scalars['String']['input']>;
  language?: InputMaybe<Scalars['String']['input']>;
};


export type MutationCreateWebhookEndpointArgs = {
  description?: InputMaybe<Scalars['String']['input']>;
  events: Array<WebhookEvent>;
  url: Scalars['String']['input'];
};


export type MutationDeleteIdentificationArgs = {
  id: Scalars['ID']['input'];
};


export type MutationDeleteWebhookEndpointArgs = {
  id: Scalars['ID']['input'];
};


export type MutationIdentifyVehicleArgs = {
  detail?: InputMaybe<ImageDetail>;
  image: Scalars['Upload']['input'];
  instructions?: InputMaybe<Scalars['String']['input']>;
  language?: InputMaybe<Scalars['String']['input']>;
};


export type MutationRedeliverWebhookArgs = {
  deliveryId: Scalars['ID']['input'];
};


export type MutationRotateWebhookSecretArgs = {
  id: Scalars['ID']['input'];
};


export type MutationUpdateWebhookEndpointArgs = {
  description?: InputMaybe<Scalars['String']['input']>;
  enabled?: InputMaybe<Scalars['Boolean']['input']>;
  events?: InputMaybe<Array<WebhookEvent>>;
  id: Scalars['ID']['input'];
  url?: InputMaybe<Scalars['String']['input']>;
};

/** Where a page stands (Relay). */
export type PageInfo = {
  __typename?: 'PageInfo';
  /** The last edge's cursor: pass it as `after` for the next page. Null on an empty page. */
  endCursor?: Maybe<Scalars['String']['output']>;
  /** True when there are more identifications after this page. */
  hasNextPage: Scalars['Boolean']['output'];
  /** Always false: pages go forward only (newest first). */
  hasPreviousPage: Scalars['Boolean']['output'];
  /** The first edge's cursor; null on an empty page. */
  startCursor?: Maybe<Scalars['String']['output']>;
};

export type Query = {
  __typename?: 'Query';
  /** A bulk job: the caller's own, or anyone's with the ReadAll role; null otherwise. */
  bulkJob?: Maybe<BulkJob>;
  /** The caller's bulk jobs (everyone's with ReadAll), newest first, keyset-paginated like `identifications`. */
  bulkJobs: BulkJobConnection;
  /**
   * One identification from history by its id: the caller's own, or anyone's with the `VehicleIdentification.ReadAll`
   * role. Null when there is none the caller may see (never made, another caller's, deleted, or past retention).
   * Fails with STORAGE_UNAVAILABLE (HTTP 503) while the history database cannot be reached.
   */
  identification?: Maybe<Identification>;
  /**
   * Successful identifications, newest first, as a Relay cursor connection (keyset-paginated: pages stay stable while
   * new identifications arrive). The caller's own; every caller's with the ReadAll role.
   */
  identifications: IdentificationConnection;
  /**
   * Identifications and tokens spent between `from` (inclusive) and `to` (exclusive), one bucket per UTC day, caller or
   * model. The caller's own usage; every caller's with the ReadAll role. Failed identifications count (they may
   * have spent tokens); deleting an identification does not change what it cost.
   */
  usage: Array<UsageBucket>;
  /** Which vision backend answers identifications, and whether it is ready to. */
  vision: VisionStatus;
  /**
   * An endpoint's deliveries, newest first, as a Relay cursor connection (keyset-paginated), each with its attempts
   * (status, duration, error, the first 64 KB of the response). Admin only.
   */
  webhookDeliveries: WebhookDeliveryConnection;
  /** Every webhook endpoint, oldest first, with whether it is disabled and why. Admin only. */
  webhookEndpoints: Array<WebhookEndpoint>;
};


export type QueryBulkJobArgs = {
  id: Scalars['ID']['input'];
};


export type QueryBulkJobsArgs = {
  after?: InputMaybe<Scalars['String']['input']>;
  first?: InputMaybe<Scalars['Int']['input']>;
};


export type QueryIdentificationArgs = {
  id: Scalars['ID']['input'];
};


export type QueryIdentificationsArgs = {
  after?: InputMaybe<Scalars['String']['input']>;
  filter?: InputMaybe<IdentificationFilter>;
  first?: InputMaybe<Scalars['Int']['input']>;
};


export type QueryUsageArgs = {
  from: Scalars['DateTime']['input'];
  groupBy?: InputMaybe<UsageGrouping>;
  to: Scalars['DateTime']['input'];
};


export type QueryWebhookDeliveriesArgs = {
  after?: InputMaybe<Scalars['String']['input']>;
  endpointId: Scalars['ID']['input'];
  first?: InputMaybe<Scalars['Int']['input']>;
};

export type Subscription = {
  __typename?: 'Subscription';
  /**
   * A bulk job as it changes: each status change, and its progress at most once a second while it runs. The caller's
   * own job, or anyone's with the ReadAll role (else NOT_FOUND). Counted against `SUBSCRIPTIONS_PER_CALLER`.
   */
  bulkJobUpdated: BulkJob;
  /**
   * Each successful identification as it completes, shaped as `identification(id)` shows it. The caller's own; every
   * caller's with the `VehicleIdentification.ReadAll` role (which may narrow them with `filter.caller`). `filter`
   * narrows them as it does `identifications`. `thumbnailUrl` is null here: the thumbnail is made just after the
   * answer; ask `identification(id) { thumbnailUrl }` for it. Authenticate in `connection_init`'s payload
   * (`{ "authorization": "Bearer …" }` or `{ "x-api-key": "…" }`); a caller holds at most `SUBSCRIPTIONS_PER_CALLER` of them
   * (TOO_MANY_SUBSCRIPTIONS beyond).
   */
  identificationCompleted: Identification;
};


export type SubscriptionBulkJobUpdatedArgs = {
  id: Scalars['ID']['input'];
};


export type SubscriptionIdentificationCompletedArgs = {
  filter?: InputMaybe<IdentificationFilter>;
};

/** Token counts reported by the model for one identification. */
export type TokenUsage = {
  __typename?: 'TokenUsage';
  /** Tokens in the answer. */
  completionTokens: Scalars['Int']['output'];
  /** Tokens in the prompt, image included. */
  promptTokens: Scalars['Int']['output'];
  /** promptTokens + completionTokens. */
  totalTokens: Scalars['Int']['output'];
};

/** What was identified, and what it cost, in one bucket. */
export type UsageBucket = {
  __typename?: 'UsageBucket';
  /** Of `completionTokens`, those of photos a bulk job's Global Batch answered (priced at the batch prices). */
  batchCompletionTokens: Scalars['Int']['output'];
  /** Of `promptTokens`, those of photos a bulk job's Global Batch answered (priced at the batch prices). */
  batchPromptTokens: Scalars['Int']['output'];
  /** Of those, the ones answered from the result cache (no model call, no tokens). */
  cached: Scalars['Int']['output'];
  /** Completion (output) tokens the model reported. */
  completionTokens: Scalars['Int']['output'];
  /**
   * The tokens at the server's prices: those a Global Batch answered at VISION_BATCH_PRICE_INPUT_PER_MTOK and
   * VISION_BATCH_PRICE_OUTPUT_PER_MTOK (default half the online prices), the others at VISION_PRICE_INPUT_PER_MTOK and
   * VISION_PRICE_OUTPUT_PER_MTOK; null when a price they need is not set.
   */
  estimatedCost?: Maybe<Scalars['Float']['output']>;
  /** Of those, the ones that failed (any error code). */
  failed: Scalars['Int']['output'];
  /** Identifications asked for, successful, failed and cached alike. */
  identifications: Scalars['Int']['output'];
  /** The day (YYYY-MM-DD), caller id or model, as grouped. */
  key: Scalars['String']['output'];
  /** Prompt (input) tokens the model reported. */
  promptTokens: Scalars['Int']['output'];
};

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

/** One Azure OpenAI deployment of `AZURE_OPENAI_BACKENDS`, as the router sees it now. */
export type VisionBackendState = {
  __typename?: 'VisionBackendState';
  /** Failed calls in a row (5xx, connection failures, timeouts); the circuit breaker opens at `VISION_BREAKER_FAILURES`. */
  consecutiveFailures: Scalars['Int']['output'];
  /** Until when it is held after a 429 (its retry-after); null when not held. */
  heldUntil?: Maybe<Scalars['DateTime']['output']>;
  /** Its name in `AZURE_OPENAI_BACKENDS` (`default` for a single deployment). */
  name: Scalars['String']['output'];
  /** Lower is tried first. */
  priority: Scalars['Int']['output'];
  state: VisionBackendRoutingState;
  /** Its share of the traffic among backends of the same priority. */
  weight: Scalars['Int']['output'];
};

/** The state of the vision backend. */
export type VisionStatus = {
  __typename?: 'VisionStatus';
  /** The backend in use. */
  backend: VisionBackend;
  /** Each Azure OpenAI deployment and how requests are routed to it now; empty for the simulated backend. Requires the Admin role. */
  backends: Array<VisionBackendState>;
  /** The Azure OpenAI deployment name; null for the simulated backend. */
  deployment?: Maybe<Scalars['String']['output']>;
  /** True when an identification sent now can be answered: the backend is ready (for Azure: a token is held and at least one deployment can take a request) and the service is not under memory or event-loop pressure. */
  ready: Scalars['Boolean']['output'];
};

/** One HTTP call of a delivery. */
export type WebhookAttempt = {
  __typename?: 'WebhookAttempt';
  attempt: Scalars['Int']['output'];
  durationMs: Scalars['Int']['output'];
  /** Why it failed without a status. */
  error?: Maybe<Scalars['String']['output']>;
  /** The response body's first 64 KB. */
  response?: Maybe<Scalars['String']['output']>;
  /** The HTTP status; null when none came (timeout, connection refused or reset, URL refused). */
  responseStatus?: Maybe<Scalars['Int']['output']>;
  startedAt: Scalars['DateTime']['output'];
};

/** One event to one endpoint. */
export type WebhookDelivery = {
  __typename?: 'WebhookDelivery';
  attempts: Array<WebhookAttempt>;
  completedAt?: Maybe<Scalars['DateTime']['output']>;
  /** When the event happened. */
  createdAt: Scalars['DateTime']['output'];
  endpointId: Scalars['ID']['output'];
  event: WebhookEvent;
  id: Scalars['ID']['output'];
  identificationId: Scalars['ID']['output'];
  /** When the next attempt is due; null unless PENDING. */
  nextAttemptAt?: Maybe<Scalars['DateTime']['output']>;
  state: WebhookDeliveryState;
  /** The `webhook-id` header: the same on every attempt and redelivery of the event. */
  webhookId: Scalars['String']['output'];
};

export type WebhookDeliveryConnection = {
  __typename?: 'WebhookDeliveryConnection';
  edges: Array<WebhookDeliveryEdge>;
  pageInfo: PageInfo;
};

export type WebhookDeliveryEdge = {
  __typename?: 'WebhookDeliveryEdge';
  cursor: Scalars['String']['output'];
  node: WebhookDelivery;
};

export type WebhookDeliveryState =
  /** Given up: every attempt of the schedule failed, the endpoint answered 410, or the identification was withdrawn first. */
  | 'FAILED'
  /** Waiting for its next attempt. */
  | 'PENDING'
  /** An attempt was answered with a 2xx. */
  | 'SUCCEEDED';

/** A receiver of webhook calls. */
export type WebhookEndpoint = {
  __typename?: 'WebhookEndpoint';
  createdAt: Scalars['DateTime']['output'];
  description?: Maybe<Scalars['String']['output']>;
  disabledAt?: Maybe<Scalars['DateTime']['output']>;
  disabledReason?: Maybe<Scalars['String']['output']>;
  /** False once disabled (410 Gone, every delivery failing for 5 days, or by an administrator): `disabledReason` says why. */
  enabled: Scalars['Boolean']['output'];
  events: Array<WebhookEvent>;
  /** The first failed attempt since the last success; null while deliveries succeed. */
  failingSince?: Maybe<Scalars['DateTime']['output']>;
  id: Scalars['ID']['output'];
  /** The last successful delivery. */
  lastSuccessAt?: Maybe<Scalars['DateTime']['output']>;
  /** Until then, calls are signed with the previous secret too (after rotateWebhookSecret). */
  secretRotationEndsAt?: Maybe<Scalars['DateTime']['output']>;
  updatedAt: Scalars['DateTime']['output'];
  url: Scalars['String']['output'];
};

/** An endpoint and its signing secret, shown this once. */
export type WebhookEndpointWithSecret = {
  __typename?: 'WebhookEndpointWithSecret';
  endpoint: WebhookEndpoint;
  /** `whsec_` and base64: what Standard Webhooks libraries (`standardwebhooks`) take to verify. */
  secret: Scalars['String']['output'];
};

/** What an endpoint may subscribe to (the body's `type`). */
export type WebhookEvent =
  /** A bulk job completed (`bulk_job.completed`), once per job: `data` is the job as `bulkJob(id)` shows it, without its items. */
  | 'BULK_JOB_COMPLETED'
  /** An identification succeeded (`identification.completed`): `data` is the Identification as this API shows it. */
  | 'IDENTIFICATION_COMPLETED'
  /** An identification failed (`identification.failed`): `data` has its id, callerId, code, language, backend, durationMs, createdAt. */
  | 'IDENTIFICATION_FAILED';



export type ResolverTypeWrapper<T> = Promise<T> | T;


export type ResolverWithResolve<TResult, TParent, TContext, TArgs> = {
  resolve: ResolverFn<TResult, TParent, TContext, TArgs>;
};
export type Resolver<TResult, TParent = Record<PropertyKey, never>, TContext = Record<PropertyKey, never>, TArgs = Record<PropertyKey, never>> = ResolverFn<TResult, TParent, TContext, TArgs> | ResolverWithResolve<TResult, TParent, TContext, TArgs>;

export type ResolverFn<TResult, TParent, TContext, TArgs> = (
  parent: TParent,
  args: TArgs,
  context: TContext,
  info: GraphQLResolveInfo
) => Promise<TResult> | TResult;

export type SubscriptionSubscribeFn<TResult, TParent, TContext, TArgs> = (
  parent: TParent,
  args: TArgs,
  context: TContext,
  info: GraphQLResolveInfo
) => AsyncIterable<TResult> | Promise<AsyncIterable<TResult>>;

export type SubscriptionResolveFn<TResult, TParent, TContext, TArgs> = (
  parent: TParent,
  args: TArgs,
  context: TContext,
  info: GraphQLResolveInfo
) => TResult | Promise<TResult>;

export interface SubscriptionSubscriberObject<TResult, TKey extends string, TParent, TContext, TArgs> {
  subscribe: SubscriptionSubscribeFn<{ [key in TKey]: TResult }, TParent, TContext, TArgs>;
  resolve?: SubscriptionResolveFn<TResult, { [key in TKey]: TResult }, TContext, TArgs>;
}

export interface SubscriptionResolverObject<TResult, TParent, TContext, TArgs> {
  subscribe: SubscriptionSubscribeFn<any, TParent, TContext, TArgs>;
  resolve: SubscriptionResolveFn<TResult, any, TContext, TArgs>;
}

export type SubscriptionObject<TResult, TKey extends string, TParent, TContext, TArgs> =
  | SubscriptionSubscriberObject<TResult, TKey, TParent, TContext, TArgs>
  | SubscriptionResolverObject<TResult, TParent, TContext, TArgs>;

export type SubscriptionResolver<TResult, TKey extends string, TParent = Record<PropertyKey, never>, TContext = Record<PropertyKey, never>, TArgs = Record<PropertyKey, never>> =
  | ((...args: any[]) => SubscriptionObject<TResult, TKey, TParent, TContext, TArgs>)
  | SubscriptionObject<TResult, TKey, TParent, TContext, TArgs>;

export type TypeResolveFn<TTypes, TParent = Record<PropertyKey, never>, TContext = Record<PropertyKey, never>> = (
  parent: TParent,
  context: TContext,
  info: GraphQLResolveInfo
) => Maybe<TTypes> | Promise<Maybe<TTypes>>;

export type IsTypeOfResolverFn<T = Record<PropertyKey, never>, TContext = Record<PropertyKey, never>> = (obj: T, context: TContext, info: GraphQLResolveInfo) => boolean | Promise<boolean>;

export type NextResolverFn<T> = () => Promise<T>;

export type DirectiveResolverFn<TResult = Record<PropertyKey, never>, TParent = Record<PropertyKey, never>, TContext = Record<PropertyKey, never>, TArgs = Record<PropertyKey, never>> = (
  next: NextResolverFn<TResult>,
  parent: TParent,
  args: TArgs,
  context: TContext,
  info: GraphQLResolveInfo
) => TResult | Promise<TResult>;





/** Mapping between all available schema types and the resolvers types */
export type ResolversTypes = {
  Boolean: ResolverTypeWrapper<Scalars['Boolean']['output']>;
  BulkItem: ResolverTypeWrapper<BulkItem>;
  BulkItemConnection: ResolverTypeWrapper<BulkItemConnection>;
  BulkItemEdge: ResolverTypeWrapper<BulkItemEdge>;
  BulkItemStatus: BulkItemStatus;
  BulkJob: ResolverTypeWrapper<BulkJob>;
  BulkJobConnection: ResolverTypeWrapper<BulkJobConnection>;
  BulkJobCounts: ResolverTypeWrapper<BulkJobCounts>;
  BulkJobEdge: ResolverTypeWrapper<BulkJobEdge>;
  BulkJobMode: BulkJobMode;
  BulkJobStatus: BulkJobStatus;
  BulkJobUsage: ResolverTypeWrapper<BulkJobUsage>;
  Confidence: Confidence;
  DateTime: ResolverTypeWrapper<Scalars['DateTime']['output']>;
  DetectedVehicle: ResolverTypeWrapper<DetectedVehicle>;
  EquipmentKind: EquipmentKind;
  ErrorCode: ErrorCode;
  Float: ResolverTypeWrapper<Scalars['Float']['output']>;
  ID: ResolverTypeWrapper<Scalars['ID']['output']>;
  Identification: ResolverTypeWrapper<Identification>;
  IdentificationConnection: ResolverTypeWrapper<IdentificationConnection>;
  IdentificationEdge: ResolverTypeWrapper<IdentificationEdge>;
  IdentificationFilter: IdentificationFilter;
  ImageDetail: ImageDetail;
  ImageInfo: ResolverTypeWrapper<ImageInfo>;
  Int: ResolverTypeWrapper<Scalars['Int']['output']>;
  Mutation: ResolverTypeWrapper<Record<PropertyKey, never>>;
  PageInfo: ResolverTypeWrapper<PageInfo>;
  Query: ResolverTypeWrapper<Record<PropertyKey, never>>;
  String: ResolverTypeWrapper<Scalars['String']['output']>;
  Subscription: ResolverTypeWrapper<Record<PropertyKey, never>>;
  TokenUsage: ResolverTypeWrapper<TokenUsage>;
  Upload: ResolverTypeWrapper<Scalars['Upload']['output']>;
  UsageBucket: ResolverTypeWrapper<UsageBucket>;
  UsageGrouping: UsageGrouping;
  VehicleCategory: VehicleCategory;
  VisionBackend: VisionBackend;
  VisionBackendRoutingState: VisionBackendRoutingState;
  VisionBackendState: ResolverTypeWrapper<VisionBackendState>;
  VisionStatus: ResolverTypeWrapper<VisionStatus>;
  WebhookAttempt: ResolverTypeWrapper<WebhookAttempt>;
  WebhookDelivery: ResolverTypeWrapper<WebhookDelivery>;
  WebhookDeliveryConnection: ResolverTypeWrapper<WebhookDeliveryConnection>;
  WebhookDeliveryEdge: ResolverTypeWrapper<WebhookDeliveryEdge>;
  WebhookDeliveryState: WebhookDeliveryState;
  WebhookEndpoint: ResolverTypeWrapper<WebhookEndpoint>;
  WebhookEndpointWithSecret: ResolverTypeWrapper<WebhookEndpointWithSecret>;
  WebhookEvent: WebhookEvent;
};

/** Mapping between all available schema types and the resolvers parents */
export type ResolversParentTypes = {
  Boolean: Scalars['Boolean']['output'];
  BulkItem: BulkItem;
  BulkItemConnection: BulkItemConnection;
  BulkItemEdge: BulkItemEdge;
  BulkJob: BulkJob;
  BulkJobConnection: BulkJobConnection;
  BulkJobCounts: BulkJobCounts;
  BulkJobEdge: BulkJobEdge;
  BulkJobUsage: BulkJobUsage;
  DateTime: Scalars['DateTime']['output'];
  DetectedVehicle: DetectedVehicle;
  Float: Scalars['Float']['output'];
  ID: Scalars['ID']['output'];
  Identification: Identification;
  IdentificationConnection: IdentificationConnection;
  IdentificationEdge: IdentificationEdge;
  IdentificationFilter: IdentificationFilter;
  ImageInfo: ImageInfo;
  Int: Scalars['Int']['output'];
  Mutation: Record<PropertyKey, never>;
  PageInfo: PageInfo;
  Query: Record<PropertyKey, never>;
  String: Scalars['String']['output'];
  Subscription: Record<PropertyKey, never>;
  TokenUsage: TokenUsage;
  Upload: Scalars['Upload']['output'];
  UsageBucket: UsageBucket;
  VisionBackendState: VisionBackendState;
  VisionStatus: VisionStatus;
  WebhookAttempt: WebhookAttempt;
  WebhookDelivery: WebhookDelivery;
  WebhookDeliveryConnection: WebhookDeliveryConnection;
  WebhookDeliveryEdge: WebhookDeliveryEdge;
  WebhookEndpoint: WebhookEndpoint;
  WebhookEndpointWithSecret: WebhookEndpointWithSecret;
};

export type BulkItemResolvers<ContextType = AppContext, ParentType extends ResolversParentTypes['BulkItem'] = ResolversParentTypes['BulkItem']> = {
  code?: Resolver<Maybe<ResolversTypes['String']>, ParentType, ContextType>;
  identification?: Resolver<Maybe<ResolversTypes['Identification']>, ParentType, ContextType>;
  name?: Resolver<ResolversTypes['String'], ParentType, ContextType>;
  status?: Resolver<ResolversTypes['BulkItemStatus'], ParentType, ContextType>;
};

export type BulkItemConnectionResolvers<ContextType = AppContext, ParentType extends ResolversParentTypes['BulkItemConnection'] = ResolversParentTypes['BulkItemConnection']> = {
  edges?: Resolver<Array<ResolversTypes['BulkItemEdge']>, ParentType, ContextType>;
  pageInfo?: Resolver<ResolversTypes['PageInfo'], ParentType, ContextType>;
};

export type BulkItemEdgeResolvers<ContextType = AppContext, ParentType extends ResolversParentTypes['BulkItemEdge'] = ResolversParentTypes['BulkItemEdge']> = {
  cursor?: Resolver<ResolversTypes['String'], ParentType, ContextType>;
  node?: Resolver<ResolversTypes['BulkItem'], ParentType, ContextType>;
};

export type BulkJobResolvers<ContextType = AppContext, ParentType extends ResolversParentTypes['BulkJob'] = ResolversParentTypes['BulkJob']> = {
  code?: Resolver<Maybe<ResolversTypes['String']>, ParentType, ContextType>;
  completedAt?: Resolver<Maybe<ResolversTypes['DateTime']>, ParentType, ContextType>;
  counts?: Resolver<ResolversTypes['BulkJobCounts'], ParentType, ContextType>;
  createdAt?: Resolver<ResolversTypes['DateTime'], ParentType, ContextType>;
  id?: Resolver<ResolversTypes['ID'], ParentType, ContextType>;
  items?: Resolver<ResolversTypes['BulkItemConnection'], ParentType, ContextType, Partial<BulkJobItemsArgs>>;
  mode?: Resolver<ResolversTypes['BulkJobMode'], ParentType, ContextType>;
  status?: Resolver<ResolversTypes['BulkJobStatus'], ParentType, ContextType>;
  usage?: Resolver<ResolversTypes['BulkJobUsage'], ParentType, ContextType>;
};

export type BulkJobConnectionResolvers<ContextType = AppContext, ParentType extends ResolversParentTypes['BulkJobConnection'] = ResolversParentTypes['BulkJobConnection']> = {
  edges?: Resolver<Array<ResolversTypes['BulkJobEdge']>, ParentType, ContextType>;
  pageInfo?: Resolver<ResolversTypes['PageInfo'], ParentType, ContextType>;
};

export type BulkJobCountsResolvers<ContextType = AppContext, ParentType extends ResolversParentTypes['BulkJobCounts'] = ResolversParentTypes['BulkJobCounts']> = {
  cancelled?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  failed?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  pending?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  succeeded?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  total?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
};

export type BulkJobEdgeResolvers<ContextType = AppContext, ParentType extends ResolversParentTypes['BulkJobEdge'] = ResolversParentTypes['BulkJobEdge']> = {
  cursor?: Resolver<ResolversTypes['String'], ParentType, ContextType>;
  node?: Resolver<ResolversTypes['BulkJob'], ParentType, ContextType>;
};

export type BulkJobUsageResolvers<ContextType = AppContext, ParentType extends ResolversParentTypes['BulkJobUsage'] = ResolversParentTypes['BulkJobUsage']> = {
  completionTokens?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  estimatedCost?: Resolver<Maybe<ResolversTypes['Float']>, ParentType, ContextType>;
  promptTokens?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
};

export interface DateTimeScalarConfig extends GraphQLScalarTypeConfig<ResolversTypes['DateTime'], any> {
  name: 'DateTime';
}

export type DetectedVehicleResolvers<ContextType = AppContext, ParentType extends ResolversParentTypes['DetectedVehicle'] = ResolversParentTypes['DetectedVehicle']> = {
  category?: Resolver<ResolversTypes['VehicleCategory'], ParentType, ContextType>;
  confidence?: Resolver<ResolversTypes['Confidence'], ParentType, ContextType>;
  evidence?: Resolver<Array<ResolversTypes['String']>, ParentType, ContextType>;
  kind?: Resolver<ResolversTypes['EquipmentKind'], ParentType, ContextType>;
  make?: Resolver<Maybe<ResolversTypes['String']>, ParentType, ContextType>;
  model?: Resolver<Maybe<ResolversTypes['String']>, ParentType, ContextType>;
};

export type IdentificationResolvers<ContextType = AppContext, ParentType extends ResolversParentTypes['Identification'] = ResolversParentTypes['Identification']> = {
  answer?: Resolver<ResolversTypes['String'], ParentType, ContextType>;
  backend?: Resolver<ResolversTypes['VisionBackend'], ParentType, ContextType>;
  backendName?: Resolver<Maybe<ResolversTypes['String']>, ParentType, ContextType>;
  bulkJobId?: Resolver<Maybe<ResolversTypes['ID']>, ParentType, ContextType>;
  cached?: Resolver<ResolversTypes['Boolean'], ParentType, ContextType>;
  callerId?: Resolver<ResolversTypes['String'], ParentType, ContextType>;
  createdAt?: Resolver<ResolversTypes['DateTime'], ParentType, ContextType>;
  detailUsed?: Resolver<ResolversTypes['ImageDetail'], ParentType, ContextType>;
  durationMs?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  id?: Resolver<ResolversTypes['ID'], ParentType, ContextType>;
  image?: Resolver<ResolversTypes['ImageInfo'], ParentType, ContextType>;
  language?: Resolver<ResolversTypes['String'], ParentType, ContextType>;
  looks?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  model?: Resolver<ResolversTypes['String'], ParentType, ContextType>;
  thumbnailUrl?: Resolver<Maybe<ResolversTypes['String']>, ParentType, ContextType>;
  usage?: Resolver<Maybe<ResolversTypes['TokenUsage']>, ParentType, ContextType>;
  vehicles?: Resolver<Array<ResolversTypes['DetectedVehicle']>, ParentType, ContextType>;
};

export type IdentificationConnectionResolvers<ContextType = AppContext, ParentType extends ResolversParentTypes['IdentificationConnection'] = ResolversParentTypes['IdentificationConnection']> = {
  edges?: Resolver<Array<ResolversTypes['IdentificationEdge']>, ParentType, ContextType>;
  pageInfo?: Resolver<ResolversTypes['PageInfo'], ParentType, ContextType>;
};

export type IdentificationEdgeResolvers<ContextType = AppContext, ParentType extends ResolversParentTypes['IdentificationEdge'] = ResolversParentTypes['IdentificationEdge']> = {
  cursor?: Resolver<ResolversTypes['String'], ParentType, ContextType>;
  node?: Resolver<ResolversTypes['Identification'], ParentType, ContextType>;
};

export type ImageInfoResolvers<ContextType = AppContext, ParentType extends ResolversParentTypes['ImageInfo'] = ResolversParentTypes['ImageInfo']> = {
  bytes?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  estimatedImageTokens?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  height?: Resolver<Maybe<ResolversTypes['Int']>, ParentType, ContextType>;
  mimeType?: Resolver<ResolversTypes['String'], ParentType, ContextType>;
  sentBytes?: Resolver<Maybe<ResolversTypes['Int']>, ParentType, ContextType>;
  sentHeight?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  sentMimeType?: Resolver<ResolversTypes['String'], ParentType, ContextType>;
  sentWidth?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  sha256?: Resolver<ResolversTypes['String'], ParentType, ContextType>;
  width?: Resolver<Maybe<ResolversTypes['Int']>, ParentType, ContextType>;
};

export type MutationResolvers<ContextType = AppContext, ParentType extends ResolversParentTypes['Mutation'] = ResolversParentTypes['Mutation']> = {
  cancelBulkJob?: Resolver<Maybe<ResolversTypes['BulkJob']>, ParentType, ContextType, RequireFields<MutationCancelBulkJobArgs, 'id'>>;
  createBulkJob?: Resolver<ResolversTypes['BulkJob'], ParentType, ContextType, Partial<MutationCreateBulkJobArgs>>;
  createWebhookEndpoint?: Resolver<ResolversTypes['WebhookEndpointWithSecret'], ParentType, ContextType, RequireFields<MutationCreateWebhookEndpointArgs, 'events' | 'url'>>;
  deleteIdentification?: Resolver<ResolversTypes['Boolean'], ParentType, ContextType, RequireFields<MutationDeleteIdentificationArgs, 'id'>>;
  deleteWebhookEndpoint?: Resolver<ResolversTypes['Boolean'], ParentType, ContextType, RequireFields<MutationDeleteWebhookEndpointArgs, 'id'>>;
  identifyVehicle?: Resolver<ResolversTypes['Identification'], ParentType, ContextType, RequireFields<MutationIdentifyVehicleArgs, 'image'>>;
  redeliverWebhook?: Resolver<Maybe<ResolversTypes['WebhookDelivery']>, ParentType, ContextType, RequireFields<MutationRedeliverWebhookArgs, 'deliveryId'>>;
  rotateWebhookSecret?: Resolver<Maybe<ResolversTypes['WebhookEndpointWithSecret']>, ParentType, ContextType, RequireFields<MutationRotateWebhookSecretArgs, 'id'>>;
  updateWebhookEndpoint?: Resolver<Maybe<ResolversTypes['WebhookEndpoint']>, ParentType, ContextType, RequireFields<MutationUpdateWebhookEndpointArgs, 'id'>>;
};

export type PageInfoResolvers<ContextType = AppContext, ParentType extends ResolversParentTypes['PageInfo'] = ResolversParentTypes['PageInfo']> = {
  endCursor?: Resolver<Maybe<ResolversTypes['String']>, ParentType, ContextType>;
  hasNextPage?: Resolver<ResolversTypes['Boolean'], ParentType, ContextType>;
  hasPreviousPage?: Resolver<ResolversTypes['Boolean'], ParentType, ContextType>;
  startCursor?: Resolver<Maybe<ResolversTypes['String']>, ParentType, ContextType>;
};

export type QueryResolvers<ContextType = AppContext, ParentType extends ResolversParentTypes['Query'] = ResolversParentTypes['Query']> = {
  bulkJob?: Resolver<Maybe<ResolversTypes['BulkJob']>, ParentType, ContextType, RequireFields<QueryBulkJobArgs, 'id'>>;
  bulkJobs?: Resolver<ResolversTypes['BulkJobConnection'], ParentType, ContextType, Partial<QueryBulkJobsArgs>>;
  identification?: Resolver<Maybe<ResolversTypes['Identification']>, ParentType, ContextType, RequireFields<QueryIdentificationArgs, 'id'>>;
  identifications?: Resolver<ResolversTypes['IdentificationConnection'], ParentType, ContextType, RequireFields<QueryIdentificationsArgs, 'first'>>;
  usage?: Resolver<Array<ResolversTypes['UsageBucket']>, ParentType, ContextType, RequireFields<QueryUsageArgs, 'from' | 'groupBy' | 'to'>>;
  vision?: Resolver<ResolversTypes['VisionStatus'], ParentType, ContextType>;
  webhookDeliveries?: Resolver<ResolversTypes['WebhookDeliveryConnection'], ParentType, ContextType, RequireFields<QueryWebhookDeliveriesArgs, 'endpointId' | 'first'>>;
  webhookEndpoints?: Resolver<Array<ResolversTypes['WebhookEndpoint']>, ParentType, ContextType>;
};

export type SubscriptionResolvers<ContextType = AppContext, ParentType extends ResolversParentTypes['Subscription'] = ResolversParentTypes['Subscription']> = {
  bulkJobUpdated?: SubscriptionResolver<ResolversTypes['BulkJob'], "bulkJobUpdated", ParentType, ContextType, RequireFields<SubscriptionBulkJobUpdatedArgs, 'id'>>;
  identificationCompleted?: SubscriptionResolver<ResolversTypes['Identification'], "identificationCompleted", ParentType, ContextType, Partial<SubscriptionIdentificationCompletedArgs>>;
};

export type TokenUsageResolvers<ContextType = AppContext, ParentType extends ResolversParentTypes['TokenUsage'] = ResolversParentTypes['TokenUsage']> = {
  completionTokens?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  promptTokens?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  totalTokens?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
};

export interface UploadScalarConfig extends GraphQLScalarTypeConfig<ResolversTypes['Upload'], any> {
  name: 'Upload';
}

export type UsageBucketResolvers<ContextType = AppContext, ParentType extends ResolversParentTypes['UsageBucket'] = ResolversParentTypes['UsageBucket']> = {
  batchCompletionTokens?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  batchPromptTokens?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  cached?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  completionTokens?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  estimatedCost?: Resolver<Maybe<ResolversTypes['Float']>, ParentType, ContextType>;
  failed?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  identifications?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  key?: Resolver<ResolversTypes['String'], ParentType, ContextType>;
  promptTokens?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
};

export type VisionBackendStateResolvers<ContextType = AppContext, ParentType extends ResolversParentTypes['VisionBackendState'] = ResolversParentTypes['VisionBackendState']> = {
  consecutiveFailures?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  heldUntil?: Resolver<Maybe<ResolversTypes['DateTime']>, ParentType, ContextType>;
  name?: Resolver<ResolversTypes['String'], ParentType, ContextType>;
  priority?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  state?: Resolver<ResolversTypes['VisionBackendRoutingState'], ParentType, ContextType>;
  weight?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
};

export type VisionStatusResolvers<ContextType = AppContext, ParentType extends ResolversParentTypes['VisionStatus'] = ResolversParentTypes['VisionStatus']> = {
  backend?: Resolver<ResolversTypes['VisionBackend'], ParentType, ContextType>;
  backends?: Resolver<Array<ResolversTypes['VisionBackendState']>, ParentType, ContextType>;
  deployment?: Resolver<Maybe<ResolversTypes['String']>, ParentType, ContextType>;
  ready?: Resolver<ResolversTypes['Boolean'], ParentType, ContextType>;
};

export type WebhookAttemptResolvers<ContextType = AppContext, ParentType extends ResolversParentTypes['WebhookAttempt'] = ResolversParentTypes['WebhookAttempt']> = {
  attempt?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  durationMs?: Resolver<ResolversTypes['Int'], ParentType, ContextType>;
  error?: Resolver<Maybe<ResolversTypes['String']>, ParentType, ContextType>;
  response?: Resolver<Maybe<ResolversTypes['String']>, ParentType, ContextType>;
  responseStatus?: Resolver<Maybe<ResolversTypes['Int']>, ParentType, ContextType>;
  startedAt?: Resolver<ResolversTypes['DateTime'], ParentType, ContextType>;
};

export type WebhookDeliveryResolvers<ContextType = AppContext, ParentType extends ResolversParentTypes['WebhookDelivery'] = ResolversParentTypes['WebhookDelivery']> = {
  attempts?: Resolver<Array<ResolversTypes['WebhookAttempt']>, ParentType, ContextType>;
  completedAt?: Resolver<Maybe<ResolversTypes['DateTime']>, ParentType, ContextType>;
  createdAt?: Resolver<ResolversTypes['DateTime'], ParentType, ContextType>;
  endpointId?: Resolver<ResolversTypes['ID'], ParentType, ContextType>;
  event?: Resolver<ResolversTypes['WebhookEvent'], ParentType, ContextType>;
  id?: Resolver<ResolversTypes['ID'], ParentType, ContextType>;
  identificationId?: Resolver<ResolversTypes['ID'], ParentType, ContextType>;
  nextAttemptAt?: Resolver<Maybe<ResolversTypes['DateTime']>, ParentType, ContextType>;
  state?: Resolver<ResolversTypes['WebhookDeliveryState'], ParentType, ContextType>;
  webhookId?: Resolver<ResolversTypes['String'], ParentType, ContextType>;
};

export type WebhookDeliveryConnectionResolvers<ContextType = AppContext, ParentType extends ResolversParentTypes['WebhookDeliveryConnection'] = ResolversParentTypes['WebhookDeliveryConnection']> = {
  edges?: Resolver<Array<ResolversTypes['WebhookDeliveryEdge']>, ParentType, ContextType>;
  pageInfo?: Resolver<ResolversTypes['PageInfo'], ParentType, ContextType>;
};

export type WebhookDeliveryEdgeResolvers<ContextType = AppContext, ParentType extends ResolversParentTypes['WebhookDeliveryEdge'] = ResolversParentTypes['WebhookDeliveryEdge']> = {
  cursor?: Resolver<ResolversTypes['String'], ParentType, ContextType>;
  node?: Resolver<ResolversTypes['WebhookDelivery'], ParentType, ContextType>;
};

export type WebhookEndpointResolvers<ContextType = AppContext, ParentType extends ResolversParentTypes['WebhookEndpoint'] = ResolversParentTypes['WebhookEndpoint']> = {
  createdAt?: Resolver<ResolversTypes['DateTime'], ParentType, ContextType>;
  description?: Resolver<Maybe<ResolversTypes['String']>, ParentType, ContextType>;
  disabledAt?: Resolver<Maybe<ResolversTypes['DateTime']>, ParentType, ContextType>;
  disabledReason?: Resolver<Maybe<ResolversTypes['String']>, ParentType, ContextType>;
  enabled?: Resolver<ResolversTypes['Boolean'], ParentType, ContextType>;
  events?: Resolver<Array<ResolversTypes['WebhookEvent']>, ParentType, ContextType>;
  failingSince?: Resolver<Maybe<ResolversTypes['DateTime']>, ParentType, ContextType>;
  id?: Resolver<ResolversTypes['ID'], ParentType, ContextType>;
  lastSuccessAt?: Resolver<Maybe<ResolversTypes['DateTime']>, ParentType, ContextType>;
  secretRotationEndsAt?: Resolver<Maybe<ResolversTypes['DateTime']>, ParentType, ContextType>;
  updatedAt?: Resolver<ResolversTypes['DateTime'], ParentType, ContextType>;
  url?: Resolver<ResolversTypes['String'], ParentType, ContextType>;
};

export type WebhookEndpointWithSecretResolvers<ContextType = AppContext, ParentType extends ResolversParentTypes['WebhookEndpointWithSecret'] = ResolversParentTypes['WebhookEndpointWithSecret']> = {
  endpoint?: Resolver<ResolversTypes['WebhookEndpoint'], ParentType, ContextType>;
  secret?: Resolver<ResolversTypes['String'], ParentType, ContextType>;
};

export type Resolvers<ContextType = AppContext> = {
  BulkItem?: BulkItemResolvers<ContextType>;
  BulkItemConnection?: BulkItemConnectionResolvers<ContextType>;
  BulkItemEdge?: BulkItemEdgeResolvers<ContextType>;
  BulkJob?: BulkJobResolvers<ContextType>;
  BulkJobConnection?: BulkJobConnectionResolvers<ContextType>;
  BulkJobCounts?: BulkJobCountsResolvers<ContextType>;
  BulkJobEdge?: BulkJobEdgeResolvers<ContextType>;
  BulkJobUsage?: BulkJobUsageResolvers<ContextType>;
  DateTime?: GraphQLScalarType;
  DetectedVehicle?: DetectedVehicleResolvers<ContextType>;
  Identification?: IdentificationResolvers<ContextType>;
  IdentificationConnection?: IdentificationConnectionResolvers<ContextType>;
  IdentificationEdge?: IdentificationEdgeResolvers<ContextType>;
  ImageInfo?: ImageInfoResolvers<ContextType>;
  Mutation?: MutationResolvers<ContextType>;
  PageInfo?: PageInfoResolvers<ContextType>;
  Query?: QueryResolvers<ContextType>;
  Subscription?: SubscriptionResolvers<ContextType>;
  TokenUsage?: TokenUsageResolvers<ContextType>;
  Upload?: GraphQLScalarType;
  UsageBucket?: UsageBucketResolvers<ContextType>;
  VisionBackendState?: VisionBackendStateResolvers<ContextType>;
  VisionStatus?: VisionStatusResolvers<ContextType>;
  WebhookAttempt?: WebhookAttemptResolvers<ContextType>;
  WebhookDelivery?: WebhookDeliveryResolvers<ContextType>;
  WebhookDeliveryConnection?: WebhookDeliveryConnectionResolvers<ContextType>;
  WebhookDeliveryEdge?: WebhookDeliveryEdgeResolvers<ContextType>;
  WebhookEndpoint?: WebhookEndpointResolvers<ContextType>;
  WebhookEndpointWithSecret?: WebhookEndpointWithSecretResolvers<ContextType>;
};


// GENERATED FILE, DO NOT EDIT: made from the SDL and the `/* GraphQL */` strings in web/src/ by `npm run codegen` (codegen.ts).
// `npm test` fails when it is stale (`npm run codegen:check`).
/* eslint-disable */
/** Internal type. DO NOT USE DIRECTLY. */
type Exact<T extends { [key: string]: unknown }> = { [K in keyof T]: T[K] };
/** Internal type. DO NOT USE DIRECTLY. */
export type Incremental<T> = T | { [P in keyof T]?: P extends ' $fragmentName' | '__typename' ? T[P] : never };
import type * as Types from './schema-types.ts';

export type IdentificationFieldsFragment = { id: string, answer: string, language: string, backend: Types.VisionBackend, model: string, cached: boolean, createdAt: string, thumbnailUrl: string | null, detailUsed: Types.ImageDetail, looks: number, vehicles: Array<{ category: Types.VehicleCategory, kind: Types.EquipmentKind, make: string | null, model: string | null, confidence: Types.Confidence, evidence: Array<string> }> };

export type IdentifyMutationVariables = Exact<{
  image: Blob;
  instructions?: string | null | undefined;
  language?: string | null | undefined;
  detail?: Types.ImageDetail | null | undefined;
}>;


export type IdentifyMutation = { identifyVehicle: { id: string, answer: string, language: string, backend: Types.VisionBackend, model: string, cached: boolean, createdAt: string, thumbnailUrl: string | null, detailUsed: Types.ImageDetail, looks: number, vehicles: Array<{ category: Types.VehicleCategory, kind: Types.EquipmentKind, make: string | null, model: string | null, confidence: Types.Confidence, evidence: Array<string> }> } };

export type HistoryQueryVariables = Exact<{
  first?: number | null | undefined;
  after?: string | null | undefined;
  filter?: Types.IdentificationFilter | null | undefined;
}>;


export type HistoryQuery = { identifications: { edges: Array<{ node: { id: string, answer: string, language: string, backend: Types.VisionBackend, model: string, cached: boolean, createdAt: string, thumbnailUrl: string | null, detailUsed: Types.ImageDetail, looks: number, vehicles: Array<{ category: Types.VehicleCategory, kind: Types.EquipmentKind, make: string | null, model: string | null, confidence: Types.Confidence, evidence: Array<string> }> } }>, pageInfo: { hasNextPage: boolean, endCursor: string | null } } };

export type DeleteIdentificationMutationVariables = Exact<{
  id: string | number;
}>;


export type DeleteIdentificationMutation = { deleteIdentification: boolean };

export type IdentificationCompletedSubscriptionVariables = Exact<{ [key: string]: never; }>;


export type IdentificationCompletedSubscription = { identificationCompleted: { id: string, answer: string, language: string, backend: Types.VisionBackend, model: string, cached: boolean, createdAt: string, thumbnailUrl: string | null, detailUsed: Types.ImageDetail, looks: number, vehicles: Array<{ category: Types.VehicleCategory, kind: Types.EquipmentKind, make: string | null, model: string | null, confidence: Types.Confidence, evidence: Array<string> }> } };

// The A2A 1.0 AgentCard and its parts: interfaces, capabilities, skills, security schemes.

import { z } from "zod";
import { JsonObjectSchema } from "./core.ts";
import type { JsonObject } from "./core.ts";

/** One way to reach the agent: a URL, the protocol binding spoken there and its version. */
export interface AgentInterface {
  /** Where the interface is served. */
  url: string;
  /** `JSONRPC`, `GRPC`, `HTTP+JSON`, or a URI naming a custom binding. */
  protocolBinding: string;
  /** Optional tenant to send with requests to this interface. */
  tenant?: string;
  /** The A2A version spoken there, e.g. `1.0`. */
  protocolVersion: string;
}

/** The organisation that provides the agent. */
export interface AgentProvider {
  /** The provider's website. */
  url: string;
  /** The provider's name. */
  organization: string;
}

/** A protocol extension that the agent supports. */
export interface AgentExtension {
  /** The extension's URI. */
  uri?: string;
  /** What the extension is for. */
  description?: string;
  /** True when clients must support the extension to use the agent. */
  required?: boolean;
  /** Extension-specific parameters. */
  params?: JsonObject;
}

/** Optional features the agent supports. */
export interface AgentCapabilities {
  /** SendStreamingMessage and SubscribeToTask are available. */
  streaming?: boolean;
  /** The push notification config operations are available. */
  pushNotifications?: boolean;
  /** Extensions the agent supports. */
  extensions?: AgentExtension[];
  /** GetExtendedAgentCard is available to authenticated clients. */
  extendedAgentCard?: boolean;
}

/** A list of strings, as the proto wraps them inside maps. */
export interface StringList {
  /** The strings. */
  list: string[];
}

/** A set of security schemes that together authorize a request, with their scopes. */
export interface SecurityRequirement {
  /** Scheme name to required scopes. */
  schemes: Record<string, StringList>;
}

/** An API key sent in a header, query parameter or cookie. */
export interface APIKeySecurityScheme {
  /** Human-readable description. */
  description?: string;
  /** `query`, `header` or `cookie`. */
  location: string;
  /** The header, parameter or cookie name. */
  name: string;
}

/** HTTP authentication, e.g. Bearer. */
export interface HTTPAuthSecurityScheme {
  /** Human-readable description. */
  description?: string;
  /** The HTTP authentication scheme, e.g. `Bearer`. */
  scheme: string;
  /** A hint about the bearer token's format, e.g. `JWT`. */
  bearerFormat?: string;
}

/** The OAuth 2.0 authorization code flow. */
export interface AuthorizationCodeOAuthFlow {
  /** The authorization endpoint. */
  authorizationUrl: string;
  /** The token endpoint. */
  tokenUrl: string;
  /** The refresh endpoint. */
  refreshUrl?: string;
  /** Scope name to description. */
  scopes: Record<string, string>;
  /** True when PKCE is required. */
  pkceRequired?: boolean;
}

/** The OAuth 2.0 client credentials flow. */
export interface ClientCredentialsOAuthFlow {
  /** The token endpoint. */
  tokenUrl: string;
  /** The refresh endpoint. */
  refreshUrl?: string;
  /** Scope name to description. */
  scopes: Record<string, string>;
}

/** The OAuth 2.0 implicit flow (deprecated). */
export interface ImplicitOAuthFlow {
  /** The authorization endpoint. */
  authorizationUrl?: string;
  /** The refresh endpoint. */
  refreshUrl?: string;
  /** Scope name to description. */
  scopes?: Record<string, string>;
}

/** The OAuth 2.0 password flow (deprecated). */
export interface PasswordOAuthFlow {
  /** The token endpoint. */
  tokenUrl?: string;
  /** The refresh endpoint. */
  refreshUrl?: string;
  /** Scope name to description. */
  scopes?: Record<string, string>;
}

/** The OAuth 2.0 device authorization flow. */
export interface DeviceCodeOAuthFlow {
  /** The device authorization endpoint. */
  deviceAuthorizationUrl: string;
  /** The token endpoint. */
  tokenUrl: string;
  /** The refresh endpoint. */
  refreshUrl?: string;
  /** Scope name to description. */
  scopes: Record<string, string>;
}

/** Exactly one OAuth 2.0 flow. */
export interface OAuthFlows {
  /** Authorization code flow. */
  authorizationCode?: AuthorizationCodeOAuthFlow;
  /** Client credentials flow. */
  clientCredentials?: ClientCredentialsOAuthFlow;
  /** Implicit flow (deprecated). */
  implicit?: ImplicitOAuthFlow;
  /** Password flow (deprecated). */
  password?: PasswordOAuthFlow;
  /** Device code flow. */
  deviceCode?: DeviceCodeOAuthFlow;
}

/** OAuth 2.0. */
export interface OAuth2SecurityScheme {
  /** Human-readable description. */
  description?: string;
  /** The supported flow. */
  flows: OAuthFlows;
  /** URL of the OAuth 2.0 authorization server metadata (RFC 8414). */
  oauth2MetadataUrl?: string;
}

/** OpenID Connect. */
export interface OpenIdConnectSecurityScheme {
  /** Human-readable description. */
  description?: string;
  /** The OpenID Connect discovery URL. */
  openIdConnectUrl: string;
}

/** Mutual TLS. */
export interface MutualTlsSecurityScheme {
  /** Human-readable description. */
  description?: string;
}

/** Exactly one security scheme. */
export interface SecurityScheme {
  /** API key. */
  apiKeySecurityScheme?: APIKeySecurityScheme;
  /** HTTP authentication. */
  httpAuthSecurityScheme?: HTTPAuthSecurityScheme;
  /** OAuth 2.0. */
  oauth2SecurityScheme?: OAuth2SecurityScheme;
  /** OpenID Connect. */
  openIdConnectSecurityScheme?: OpenIdConnectSecurityScheme;
  /** Mutual TLS. */
  mtlsSecurityScheme?: MutualTlsSecurityScheme;
}

/** What the agent can do: a capability advertised in the card. */
export interface AgentSkill {
  /** Unique id of the skill. */
  id: string;
  /** Human-readable name. */
  name: string;
  /** What the skill does. */
  description: string;
  /** Keywords. */
  tags: string[];
  /** Example prompts. */
  examples?: string[];
  /** Media types the skill accepts, when they differ from the card's defaults. */
  inputModes?: string[];
  /** Media types the skill produces, when they differ from the card's defaults. */
  outputModes?: string[];
  /** Security requirements specific to this skill. */
  securityRequirements?: SecurityRequirement[];
}

/** A JWS signature over the agent card (RFC 7515, detached, JSON serialization). */
export interface AgentCardSignature {
  /** The base64url protected header. */
  protected: string;
  /** The base64url signature. */
  signature: string;
  /** The unprotected header. */
  header?: JsonObject;
}

/** The self-description an agent publishes at `/.well-known/agent-card.json`. */
export interface AgentCard {
  /** Human-readable name. */
  name: string;
  /** What the agent does. */
  description: string;
  /** The interfaces the agent serves, preferred first. */
  supportedInterfaces: AgentInterface[];
  /** Who provides the agent. */
  provider?: AgentProvider;
  /** The agent's own version. */
  version: string;
  /** Where its documentation lives. */
  documentationUrl?: string;
  /** Optional features it supports. */
  capabilities: AgentCapabilities;
  /** Security schemes by name. */
  securitySchemes?: Record<string, SecurityScheme>;
  /** Security requirements for all requests. */
  securityRequirements?: SecurityRequirement[];
  /** Media types accepted by default. */
  defaultInputModes: string[];
  /** Media types produced by default. */
  defaultOutputModes: string[];
  /** The agent's skills. */
  skills: AgentSkill[];
  /** Signatures over the card. */
  signatures?: AgentCardSignature[];
  /** An icon. */
  iconUrl?: string;
}

// ---------------------------------------------------------------------------------------------

const opt = <T extends z.ZodType>(s: T) => s.exactOptional();
const scopes = z.record(z.string(), z.string());
const oneOf = (obj: Record<string, unknown>) =>
  Object.values(obj).filter((v) => v !== undefined).length === 1;

export const AgentInterfaceSchema: z.ZodType<AgentInterface> = z.object({
  url: z.string().min(1),
  protocolBinding: z.string().min(1),
  tenant: opt(z.string()),
  protocolVersion: z.string().min(1),
});

export const AgentProviderSchema: z.ZodType<AgentProvider> = z.object({
  url: z.string(),
  organization: z.string(),
});

export const AgentExtensionSchema: z.ZodType<AgentExtension> = z.object({
  uri: opt(z.string()),
  description: opt(z.string()),
  required: opt(z.boolean()),
  params: opt(JsonObjectSchema),
});

export const AgentCapabilitiesSchema: z.ZodType<AgentCapabilities> = z.object({
  streaming: opt(z.boolean()),
  pushNotifications: opt(z.boolean()),
  extensions: opt(z.array(AgentExtensionSchema)),
  extendedAgentCard: opt(z.boolean()),
});

export const SecurityRequirementSchema: z.ZodType<SecurityRequirement> = z.object({
  schemes: z.record(z.string(), z.object({ list: z.array(z.string()) })),
});

const OAuthFlowsSchema: z.ZodType<OAuthFlows> = z.object({
  authorizationCode: opt(z.object({
    authorizationUrl: z.string(),
    tokenUrl: z.string(),
    refreshUrl: opt(z.string()),
    scopes,
    pkceRequired: opt(z.boolean()),
  })),
  clientCredentials: opt(z.object({
    tokenUrl: z.string(),
    refreshUrl: opt(z.string()),
    scopes,
  })),
  implicit: opt(z.object({
    authorizationUrl: opt(z.string()),
    refreshUrl: opt(z.string()),
    scopes: opt(scopes),
  })),
  password: opt(z.object({
    tokenUrl: opt(z.string()),
    refreshUrl: opt(z.string()),
    scopes: opt(scopes),
  })),
  deviceCode: opt(z.object({
    deviceAuthorizationUrl: z.string(),
    tokenUrl: z.string(),
    refreshUrl: opt(z.string()),
    scopes,
  })),
}).refine(oneOf, "flows must have exactly one flow");

export const SecuritySchemeSchema: z.ZodType<SecurityScheme> = z.object({
  apiKeySecurityScheme: opt(z.object({
    description: opt(z.string()),
    location: z.string(),
    name: z.string(),
  })),
  httpAuthSecurityScheme: opt(z.object({
    description: opt(z.string()),
    scheme: z.string(),
    bearerFormat: opt(z.string()),
  })),
  oauth2SecurityScheme: opt(z.object({
    description: opt(z.string()),
    flows: OAuthFlowsSchema,
    oauth2MetadataUrl: opt(z.string()),
  })),
  openIdConnectSecurityScheme: opt(z.object({
    description: opt(z.string()),
    openIdConnectUrl: z.string(),
  })),
  mtlsSecurityScheme: opt(z.object({ description: opt(z.string()) })),
}).refine(oneOf, "a security scheme must have exactly one scheme");

export const AgentSkillSchema: z.ZodType<AgentSkill> = z.object({
  id: z.string().min(1),
  name: z.string(),
  description: z.string(),
  tags: z.array(z.string()),
  examples: opt(z.array(z.string())),
  inputModes: opt(z.array(z.string())),
  outputModes: opt(z.array(z.string())),
  securityRequirements: opt(z.array(SecurityRequirementSchema)),
});

export const AgentCardSignatureSchema: z.ZodType<AgentCardSignature> = z.object({
  protected: z.string(),
  signature: z.string(),
  header: opt(JsonObjectSchema),
});

export const AgentCardSchema: z.ZodType<AgentCard> = z.object({
  name: z.string().min(1, "name must not be empty"),
  description: z.string(),
  supportedInterfaces: z.array(AgentInterfaceSchema).min(
    1,
    "supportedInterfaces must not be empty",
  ),
  provider: opt(AgentProviderSchema),
  version: z.string(),
  documentationUrl: opt(z.string()),
  capabilities: AgentCapabilitiesSchema,
  securitySchemes: opt(z.record(z.string(), SecuritySchemeSchema)),
  securityRequirements: opt(z.array(SecurityRequirementSchema)),
  defaultInputModes: z.array(z.string()),
  defaultOutputModes: z.array(z.string()),
  skills: z.array(AgentSkillSchema),
  signatures: opt(z.array(AgentCardSignatureSchema)),
  iconUrl: opt(z.string()),
});

// Just the types tests/sdk_agent.ts uses of express and of the SDK's express entry point. Their
// own declarations bring @types/node into the one program `deno check tests/` builds, where its
// globals (webcrypto's CryptoKey) clash with Deno's.

import type { IncomingMessage, Server, ServerResponse } from "node:http";
import type { DefaultRequestHandler } from "@a2a-js/sdk/server";

/** An express response, as far as the fixture uses it. */
export interface Response extends ServerResponse {
  status(code: number): Response;
  set(name: string, value: string): Response;
  json(body: unknown): Response;
}

/** An express middleware. */
export type Handler = (
  req: IncomingMessage,
  res: Response,
  next: (err?: unknown) => void,
) => void;

/** An express application. */
export interface Application {
  use(...handlers: (string | Handler)[]): Application;
  listen(port: number, hostname: string, onListen: () => void): Server;
}

/** The SDK's express router for the HTTP+JSON binding. */
export function restHandler(options: {
  requestHandler: DefaultRequestHandler;
  userBuilder: unknown;
}): Handler;

/** The SDK's user builders. */
export const UserBuilder: { noAuthentication: unknown };

/** Creates an express application. */
export default function express(): Application;

// The client's check of an agent card: the members it relies on, by hand rather than with the zod
// schema, which would bring zod and its locale files into the browser bundle (about 90 KB
// gzipped of a client that is otherwise about 30 KB). The server parses the cards it serves with
// the full schema.

import { InvalidAgentResponseError } from "../errors/errors.ts";
import type { AgentCard } from "../types/agent_card.ts";

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/**
 * Checks that a value read from the network is an agent card the client can use: an object with
 * a `name` and a list of `supportedInterfaces`, each with a `url`, a `protocolBinding` and a
 * `protocolVersion`.
 *
 * @param value The parsed JSON of the card.
 * @returns The card.
 * @throws {InvalidAgentResponseError} When it is not one, naming the first member at fault.
 */
export function checkAgentCard(value: unknown): AgentCard {
  const fail = (detail: string): never => {
    throw new InvalidAgentResponseError(`Invalid agent card: ${detail}`);
  };
  if (!isObject(value)) return fail("expected an object");
  if (typeof value.name !== "string") return fail("name must be a string");
  const interfaces = value.supportedInterfaces;
  if (!Array.isArray(interfaces)) return fail("supportedInterfaces must be a list");
  interfaces.forEach((i: unknown, n) => {
    if (!isObject(i)) return fail(`supportedInterfaces[${n}] must be an object`);
    for (const key of ["url", "protocolBinding", "protocolVersion"]) {
      if (typeof i[key] !== "string") fail(`supportedInterfaces[${n}].${key} must be a string`);
    }
  });
  if (value.capabilities !== undefined && !isObject(value.capabilities)) {
    return fail("capabilities must be an object");
  }
  return value as unknown as AgentCard;
}

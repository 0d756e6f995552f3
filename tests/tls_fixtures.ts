// A throwaway certificate authority for the TLS tests: a CA and a server certificate for
// 127.0.0.1 and localhost made by Debian's `openssl`, and a second CA that trusts nothing of ours,
// all in a temp dir removed on disposal.
//
// Without openssl the suites that need it are skipped, unless A2A_REQUIRE_TLS=1 (set by .ci/run).

/** PEM texts and their files. */
export interface TestCertificates extends AsyncDisposable {
  /** The CA that issued the server certificate. */
  readonly ca: string;
  /** A CA that issued nothing the server presents. */
  readonly otherCa: string;
  /** The server's certificate (PEM). */
  readonly cert: string;
  /** The server's private key (PEM). */
  readonly key: string;
  /** Files of the same: `ca`, `cert`, `key`. */
  readonly files: { readonly ca: string; readonly cert: string; readonly key: string };
}

/** Whether the suites must run (CI) rather than be skipped when openssl is missing. */
export const REQUIRE_TLS = Deno.env.get("A2A_REQUIRE_TLS") === "1";

function has(command: string): boolean {
  try {
    return new Deno.Command(command, { args: ["version"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
}

/** Test options that skip a suite when openssl is not installed (never under CI). */
export const TLS_TEST = { ignore: !REQUIRE_TLS && !has("openssl") };

async function openssl(dir: string, args: string[]): Promise<void> {
  const out = await new Deno.Command("openssl", {
    args,
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
  })
    .output();
  if (!out.success) {
    throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
}

/**
 * Makes a CA, a server certificate it signs (for `127.0.0.1`, `::1` and `localhost`, valid one
 * day) and an unrelated CA, with P-256 keys.
 *
 * @returns The certificates; `await using` removes their files.
 */
export async function makeCertificates(): Promise<TestCertificates> {
  const dir = await Deno.makeTempDir({ prefix: "a2a-tls-" });
  try {
    const ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    for (const name of ["ca", "other-ca"]) {
      await openssl(dir, [
        "req",
        "-x509",
        ...ec,
        "-keyout",
        `${name}.key`,
        "-out",
        `${name}.pem`,
        "-days",
        "1",
        "-subj",
        `/CN=a2a-capnweb test ${name}`,
        "-addext",
        "basicConstraints=critical,CA:TRUE",
        "-addext",
        "keyUsage=critical,keyCertSign,cRLSign",
      ]);
    }
    await openssl(dir, [
      "req",
      ...ec,
      "-keyout",
      "server.key",
      "-out",
      "server.csr",
      "-subj",
      "/CN=localhost",
    ]);
    await Deno.writeTextFile(
      `${dir}/server.ext`,
      "subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1\nbasicConstraints=CA:FALSE\n" +
        "keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
    );
    await openssl(dir, [
      "x509",
      "-req",
      "-in",
      "server.csr",
      "-CA",
      "ca.pem",
      "-CAkey",
      "ca.key",
      "-CAcreateserial",
      "-out",
      "server.pem",
      "-days",
      "1",
      "-extfile",
      "server.ext",
    ]);
    const read = (name: string) => Deno.readTextFile(`${dir}/${name}`);
    return {
      ca: await read("ca.pem"),
      otherCa: await read("other-ca.pem"),
      cert: await read("server.pem"),
      key: await read("server.key"),
      files: { ca: `${dir}/ca.pem`, cert: `${dir}/server.pem`, key: `${dir}/server.key` },
      async [Symbol.asyncDispose]() {
        await Deno.remove(dir, { recursive: true });
      },
    };
  } catch (err) {
    await Deno.remove(dir, { recursive: true });
    throw err;
  }
}

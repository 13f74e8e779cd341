// GitHub's and Shopify's official webhook libraries, for tests/tests/official_sdks.rs:
// the same protocol as tests/py/official.py (one JSON request on stdin, one answer
// on stdout). An import that fails is an error, never a skip: scripts/test runs
// `npm ci` here.
import { createHmac } from "node:crypto";
import { sign, verify } from "@octokit/webhooks-methods";
import "@shopify/shopify-api/adapters/node";
import { ApiVersion, LogSeverity, shopifyApi } from "@shopify/shopify-api";

const input = await new Promise((resolve) => {
  let text = "";
  process.stdin.on("data", (chunk) => (text += chunk));
  process.stdin.on("end", () => resolve(text));
});
const req = JSON.parse(input);
const headers = Object.fromEntries((req.headers ?? []).map(([n, v]) => [n.toLowerCase(), v]));

async function signed() {
  if (req.preset === "github") {
    return [["X-Hub-Signature-256", await sign(req.secret, req.body)]];
  }
  if (req.preset === "shopify") {
    // The library has no signer: this is the HMAC its documentation describes.
    const hmac = createHmac("sha256", req.secret).update(req.body).digest("base64");
    return [["X-Shopify-Hmac-Sha256", hmac]];
  }
  throw new Error(`no official library here for ${req.preset}`);
}

async function valid() {
  if (req.preset === "github") {
    return await verify(req.secret, req.body, headers["x-hub-signature-256"] ?? "");
  }
  if (req.preset === "shopify") {
    const shopify = shopifyApi({
      apiKey: "hookflow-tests",
      apiSecretKey: req.secret,
      apiVersion: ApiVersion.October25,
      scopes: [],
      hostName: "localhost",
      isEmbeddedApp: false,
      logger: { level: LogSeverity.Error },
    });
    const rawRequest = { headers, method: "POST", url: "/" };
    const result = await shopify.webhooks.validate({ rawBody: req.body, rawRequest, rawResponse: {} });
    if (!result.valid) throw new Error(`${result.reason} ${result.missingHeaders ?? ""}`);
    return true;
  }
  throw new Error(`no official library here for ${req.preset}`);
}

if (req.op === "sign") {
  console.log(JSON.stringify({ headers: await signed() }));
} else {
  let answer;
  try {
    answer = { valid: await valid(), why: "" };
  } catch (e) {
    answer = { valid: false, why: String(e) };
  }
  console.log(JSON.stringify(answer));
}

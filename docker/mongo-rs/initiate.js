// Run by the one-shot `mongo-rs-init` service (mongosh, connected directly to the first member): initiates the
// replica set RS_NAME with the members RS_MEMBERS ("host:port,host:port,…"; the first gets priority 2, so it is the
// preferred primary) unless the set already has a configuration, then waits until one member is a writable primary
// and every other one a secondary. Idempotent: on an initiated set it only waits. Any failure is an uncaught error,
// so mongosh exits non-zero and init.sh retries until its deadline.
const name = process.env.RS_NAME;
const hosts = process.env.RS_MEMBERS.split(",");
const waitMs = Number(process.env.RS_WAIT_SECONDS || "60") * 1000;

// Keyfile auth is on (mongo-0's first start created the root user before the set existed).
db.getSiblingDB("admin").auth(process.env.MONGO_ROOT_USERNAME,
                              fs.readFileSync("/run/secrets/mongo_root_password", "utf8").trim());

let existing = null;
try {
  existing = rs.status().set;
} catch (e) {
  if (e.codeName !== "NotYetInitialized") throw e;
}
if (existing === null) {
  rs.initiate({ _id: name, members: hosts.map((host, i) => ({ _id: i, host, priority: i === 0 ? 2 : 1 })) });
  print(`replica set ${name}: initiated with ${hosts.join(", ")}`);
} else if (existing !== name) {
  throw new Error(`this member belongs to replica set ${existing}, not ${name}`);
} else {
  print(`replica set ${name}: already initiated`);
}

const deadline = Date.now() + waitMs;
for (;;) {
  let members = [];
  try {
    members = rs.status().members;
  } catch (e) {
    // Right after initiate, or during an election, the status can be briefly unavailable: keep waiting.
  }
  const states = members.map((m) => `${m.name} ${m.stateStr}`).join(", ");
  const primaries = members.filter((m) => m.stateStr === "PRIMARY").length;
  const secondaries = members.filter((m) => m.stateStr === "SECONDARY").length;
  if (primaries === 1 && secondaries === hosts.length - 1) {
    print(`replica set ${name}: ready (${states})`);
    break;
  }
  if (Date.now() > deadline) {
    throw new Error(`replica set ${name}: no writable primary with ${hosts.length - 1} secondaries within ` +
                    `${waitMs / 1000} s (${states || "no status"})`);
  }
  sleep(500);
}

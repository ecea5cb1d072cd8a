# The NixOS test of a declaration, as plain data: per host the packages (by nixpkgs attribute
# name), the systemd units (netns-kit applying the host's share, then one unit per service
# instance, inside its namespace), and the Python testScript. Builtins only (no nixpkgs), so
# xtests/tests/nix_layout.rs evaluates it here; nix/nixos-test.nix turns it into NixOS modules.
#
#   nix-instantiate --store dummy:// --eval --strict --json -E \
#     'import ./nix/test-plan.nix { file = ./ecomm-services/deploy/three-tier.toml; }'
#
# What comes from the declaration (through nix/layout.nix): hosts, nodes, addresses, service
# commands and environment, start order (depends_on), readiness probes, the derived overlay,
# the database names (data.database of the services that depend on PostgreSQL). The policy
# matrix the isolation check expects is computed from the file's [[policy]] (the layout does
# not carry it). What this file adds, because the declaration does not say it: the values of
# the runtime `vars`, the package that provides each program, the gateway/registry/PostgreSQL tuning the
# VM suite also adds (xtests/src/backend/vm.rs: SERVICE_ENV), the fault timings,
# and the underlay device: the NixOS test driver gives every VM its own user-mode NIC as eth0
# and the first of `virtualisation.vlans` as eth1, so the file netns-kit applies is the
# declaration with underlay.dev = "eth1" (`topology` below; nothing else differs).
{
  file,
  layout ? import ./layout.nix { inherit file; },
  run ? "lab",
  vlan ? 1,
  underlayDev ? "eth1",
  topologyPath ? "/etc/netns-kit/${layout.name}.toml",
  vars ? {
    registry_token = "nixos-test-token";
    db_auth = "postgres";
  },
  # Appended to the declared command of these services (test tuning, as in the VM suite).
  tuning ? {
    gateway = [
      "--registry-ttl-seconds" "30"
      "--health-interval-ms" "500" "--health-timeout-ms" "2000" "--unhealthy-after" "2"
      "--eject-after" "1" "--connect-timeout-ms" "1000" "--try-timeout-ms" "5000"
      "--total-timeout-ms" "15000" "--max-tries" "3"
    ];
    # The socket directory psql and createdb use here, and the VM suite's speed settings.
    postgres = [
      "-c" "unix_socket_directories=/run/postgresql"
      "-c" "fsync=off" "-c" "synchronous_commit=off" "-c" "full_page_writes=off"
    ];
    product = [ "--registry-ttl-seconds" "30" ];
    order = [ "--registry-ttl-seconds" "30" ];
  },
  ejectionBoundMs ? 2000,
  afterFaultSeconds ? 6,
  probePort ? 9000,
}:
let
  inherit (builtins)
    any
    attrNames
    concatLists
    concatStringsSep
    elem
    filter
    hasAttr
    head
    length
    listToAttrs
    map
    replaceStrings
    sort
    toJSON
    toString
    ;
  or' = set: name: default: if hasAttr name set then set.${name} else default;
  unique = foldl (acc: x: if elem x acc then acc else acc ++ [ x ]) [ ];
  foldl = builtins.foldl';
  q = s: "'" + replaceStrings [ "'" ] [ "'\\''" ] s + "'";
  fail = what: throw "nix/test-plan.nix (${toString file}): ${what}";

  spec = builtins.fromTOML (builtins.readFile file);
  hosts = attrNames layout.hosts;
  serviceNames = attrNames layout.services;

  # ---- programs -----------------------------------------------------------------------------
  # The package (nixpkgs attribute; "workspace" = this repository's build) of each program a
  # service runs, and the user it runs as.
  programs = {
    postgres = {
      package = "postgresql_15";
      user = "postgres";
    };
    redis-server = {
      package = "redis";
      user = null;
    };
    ecomm = {
      package = "workspace";
      user = null;
    };
  };
  # On every host: netns-kit (workspace), ip, nft, curl and busybox (nc) for the checks.
  basePackages = [ "workspace" "iproute2" "nftables" "curl" "busybox" ];
  programOf =
    s: i:
    let p = head i.command; in
    if hasAttr p programs then programs.${p} else fail "service ${s}: no package known for program ${p}";

  # ---- instances ----------------------------------------------------------------------------
  instances = concatLists (
    map (
      s:
      map (
        node:
        let i = layout.services.${s}.instances.${node}; in
        {
          service = s;
          inherit node;
          inherit (i) host address;
          unit = "${run}-${s}-${node}";
          svc = layout.services.${s};
          inst = i;
        }
      ) (attrNames layout.services.${s}.instances)
    ) serviceNames
  );
  instancesOf = s: filter (x: x.service == s) instances;
  applyUnit = "netns-kit-${run}";
  ns = node: "${run}-${node}";

  varsFor =
    s:
    vars // { data_dir = "/var/lib/${run}/${s}"; };
  subst =
    s: text:
    let
      vs = varsFor s;
      names = attrNames vs;
    in
    replaceStrings (map (n: "\${${n}}") names) (map (n: vs.${n}) names) text;
  missingVars = filter (v: !(hasAttr v (varsFor "x"))) layout.vars;

  readyCmd =
    node: address: ready: secs:
    if ready.probe == "tcp" then
      "ip netns exec ${ns node} timeout ${toString secs} bash -c ${q "exec 3<>/dev/tcp/${address}/${toString ready.port}"}"
    else if ready.probe == "http" then
      "ip netns exec ${ns node} curl -sf -o /dev/null -m ${toString secs} http://${address}:${toString ready.port}${ready.path}"
    else
      "true";
  waitFor = what: cmd: ''
    for i in $(seq 1 300); do ${cmd} && break; [ "$i" = 300 ] && { echo ${q "timed out waiting for ${what}"} >&2; exit 1; }; sleep 1; done
  '';

  # The databases a PostgreSQL service must hold: data.database of every service depending on it.
  databasesFor =
    s:
    unique (
      concatLists (
        map (
          o:
          let d = layout.services.${o}; in
          if elem s d.depends_on && hasAttr "database" d.data then [ d.data.database ] else [ ]
        ) serviceNames
      )
    );

  unitOf =
    x:
    let
      prog = programOf x.service x.inst;
      deps = x.svc.depends_on;
      localDeps = filter (d: d.host == x.host) (concatLists (map instancesOf deps));
      remoteDeps = filter (d: d.host != x.host) (concatLists (map instancesOf deps));
      argv = map (subst x.service) x.inst.command ++ or' tuning x.service [ ];
      asUser = if prog.user == null then "" else "runuser -u ${prog.user} -- ";
      dataDir = (varsFor x.service).data_dir;
      isPostgres = head x.inst.command == "postgres";
    in
    {
      name = x.unit;
      value = {
        description = "${x.service} on ${x.node} (namespace ${ns x.node}), from ${layout.name}";
        service = x.service;
        node = x.node;
        after = [ "${applyUnit}.service" ] ++ map (d: "${d.unit}.service") localDeps;
        requires = [ "${applyUnit}.service" ] ++ map (d: "${d.unit}.service") localDeps;
        wantedBy = [ "multi-user.target" ];
        path = unique (basePackages ++ [ prog.package ]);
        environment = listToAttrs (
          map (k: { name = k; value = subst x.service x.inst.env.${k}; }) (attrNames x.inst.env)
        );
        # Data directory; PostgreSQL's cluster; dependencies on other hosts, waited for from
        # this node's namespace (systemd orders units on one machine only).
        preStart =
          concatStringsSep "\n" (
            [ "install -d -m 700 ${if prog.user == null then "" else "-o ${prog.user} "}${dataDir}" ]
            ++ (
              if isPostgres then
                [
                  "install -d -o postgres /run/postgresql"
                  "[ -e ${dataDir}/PG_VERSION ] || { runuser -u postgres -- initdb -D ${dataDir} -A trust -U postgres && echo 'host all all 0.0.0.0/0 trust' >> ${dataDir}/pg_hba.conf; }"
                ]
              else
                [ ]
            )
            ++ map (
              d: waitFor "${d.service} on ${d.node} (${d.host})" (readyCmd x.node d.address d.svc.ready 2)
            ) remoteDeps
          );
        script = "exec ip netns exec ${ns x.node} ${asUser}${concatStringsSep " " (map q argv)}";
        # The unit is active once its readiness probe passes, so wait_for_unit and the
        # after/requires of dependent units mean "ready", not "forked".
        postStart = concatStringsSep "\n" (
          [ (waitFor "${x.service} on ${x.node} to be ready" (readyCmd x.node x.address x.svc.ready 2)) ]
          ++ (
            if isPostgres then
              map (
                db:
                "runuser -u postgres -- psql -h /run/postgresql -AtX -c ${q "select 1 from pg_database where datname = '${db}'"} | grep -q 1 || runuser -u postgres -- createdb -h /run/postgresql ${db}"
              ) (databasesFor x.service)
            else
              [ ]
          )
        );
        ready = x.svc.ready;
        stage = x.svc.stage;
        user = prog.user;
      };
    };

  overlayOn = h: filter (o: elem h o.hosts) layout.overlay;

  hostPlan =
    h:
    let
      mine = filter (x: x.host == h) instances;
    in
    {
      nodes = layout.hosts.${h}.nodes;
      packages = unique (basePackages ++ map (x: (programOf x.service x.inst).package) mine);
      users = unique (filter (u: u != null) (map (x: (programOf x.service x.inst).user) mine));
      vlans = [ vlan ];
      overlay = map (o: { inherit (o) name vni group network; }) (overlayOn h);
      units = listToAttrs (
        [
          {
            name = applyUnit;
            value = {
              description = "netns-kit: ${h}'s share of ${layout.name} (run ${run})";
              after = [ "network-online.target" ];
              requires = [ ];
              wants = [ "network-online.target" ];
              wantedBy = [ "multi-user.target" ];
              path = [ "workspace" "iproute2" "nftables" ];
              oneshot = true;
              # Room for the VXLAN header on the underlay (as the VM suite does), then the
              # share; the overlay's VXLANs (${concatStringsSep ", " (map (o: "${o.name} VNI ${toString o.vni}") (overlayOn h))}) are part of it.
              script = concatStringsSep "\n" (
                (if overlayOn h == [ ] then [ ] else [ "ip link set ${underlayDev} mtu 1600" ])
                ++ [ "netns-kit apply --host ${h} ${topologyPath} --name ${run}" ]
                ++ map (
                  o: "ip -n ${run}-fabric -d link show ${o.name} | grep -q ${q "vxlan id ${toString o.vni} "}"
                ) (overlayOn h)
              );
              stop = "netns-kit destroy ${run}";
            };
          }
        ]
        ++ map unitOf mine
      );
    };

  # ---- the policy matrix (compile.rs semantics, TCP only) -----------------------------------
  nodeNets = n: attrNames layout.nodes.${n}.addresses;
  netOfAddress = n: a: head (filter (net: layout.nodes.${n}.addresses.${net} == a) (nodeNets n));
  inRange =
    port: p:
    if builtins.isInt p then
      p == port
    else
      let
        m = builtins.match "([0-9]+)(-([0-9]+))?" p;
        lo = builtins.fromJSON (builtins.elemAt m 0);
        hi = if builtins.elemAt m 2 == null then lo else builtins.fromJSON (builtins.elemAt m 2);
      in
      port >= lo && port <= hi;
  endMatches = e: node: nets: e == node || elem e nets;
  ruleAllows =
    from: to: toNet: port: r:
    endMatches r.from from (nodeNets from)
    && endMatches r.to to [ toNet ]
    && elem (or' r "proto" "any") [ "tcp" "any" "all" ]
    && (or' r "ports" [ ] == [ ] || any (inRange port) r.ports);
  allowed =
    from: to: address: port:
    let toNet = netOfAddress to address; in
    elem toNet (nodeNets from) || any (ruleAllows from to toNet port) (or' spec "policy" [ ]);
  # One row per ordered pair of service nodes and port (the target's main port and an
  # undeclared probe port, listened on by busybox nc).
  probeNodes = unique (map (x: x.node) instances);
  addressOf = n: (head (filter (x: x.node == n) instances)).address;
  mainPortOf = n: (head (filter (x: x.node == n) instances)).svc.port;
  matrix = concatLists (
    map (
      from:
      concatLists (
        map (
          to:
          map (port: {
            inherit from to port;
            address = addressOf to;
            allowed = allowed from to (addressOf to) port;
          }) (filter (p: p != null) [ (mainPortOf to) probePort ])
        ) (filter (t: t != from) probeNodes)
      )
    ) probeNodes
  );
  declaredPorts = concatLists (
    map (s: (if layout.services.${s}.port == null then [ ] else [ layout.services.${s}.port ])
      ++ map (p: layout.services.${s}.ports.${p}) (attrNames layout.services.${s}.ports)) serviceNames
  );

  # ---- roles the scenarios need, found in the layout ----------------------------------------
  single = prog: let m = filter (x: head x.inst.command == prog && length (attrNames x.svc.instances) == 1) instances; in
    if m == [ ] then fail "no single-instance service runs ${prog}" else head m;
  withArg = arg: filter (x: head x.inst.command == "ecomm" && elem arg x.inst.command) instances;
  roleService = arg: let m = unique (map (x: x.service) (withArg arg)); in
    if length m != 1 then fail "expected one ecomm ${arg} service, found ${toJSON m}" else head m;
  gatewayService = roleService "gateway";
  productService = roleService "product";
  orderService = roleService "order";
  gateway = head (instancesOf gatewayService);
  postgres = single "postgres";
  orderDb = layout.services.${orderService}.data.database;
  # The backend host to crash and cut off: every node on it runs an instance of a service
  # that has instances on other hosts too, and it carries no router.
  replicated = x: length (attrNames x.svc.instances) > 1 && any (y: y.service == x.service && y.host != x.host) instances;
  faultHosts = filter (
    h:
    let mine = filter (x: x.host == h) instances; in
    mine != [ ]
    && all replicated mine
    && !(any (n: layout.nodes.${n}.router) layout.hosts.${h}.nodes)
  ) hosts;
  all = pred: l: builtins.all pred l;
  faultHost = if faultHosts == [ ] then fail "no backend host whose loss the declaration survives" else head faultHosts;
  productHosts = unique (map (x: x.host) (instancesOf productService));

  pyName = h: replaceStrings [ "-" ] [ "_" ] h;
  data = {
    inherit run hosts probePort ejectionBoundMs afterFaultSeconds faultHost productHosts orderDb;
    units = listToAttrs (map (h: { name = h; value = attrNames (hostPlan h).units; }) hosts);
    start = map (x: { inherit (x) host unit; }) (sort (a: b: a.svc.stage < b.svc.stage || (a.svc.stage == b.svc.stage && a.unit < b.unit)) instances);
    nodes = listToAttrs (map (h: { name = h; value = layout.hosts.${h}.nodes; }) hosts);
    overlay = map (o: { inherit (o) name vni hosts; }) layout.overlay;
    matrix = map (r: { inherit (r) from to address port allowed; host = layout.nodes.${r.from}.host; toHost = layout.nodes.${r.to}.host; }) matrix;
    gateway = { inherit (gateway) node host; url = "http://${gateway.address}:${toString gateway.svc.port}"; };
    postgres = { inherit (postgres) node host; };
    products = map (x: { inherit (x) node host address; port = x.svc.port; }) (instancesOf productService);
    orders = map (x: { inherit (x) node host address; port = x.svc.port; }) (instancesOf orderService);
    faultUnits = map (x: x.unit) (filter (x: x.host == faultHost) instances);
  };

  testScript = ''
    # Generated by nix/test-plan.nix from ${layout.name}: what the shared scenarios (xtests/src/scenarios) prove on the VM backend.
    import json, shlex, time
    P = json.loads(${toJSON (toJSON data)})
    M = { ${concatStringsSep ", " (map (h: "${toJSON h}: ${pyName h}") hosts)} }
    RUN = P["run"]
    # A background process that outlives the driver's command: a transient unit, with the
    # driver shell's PATH (a transient unit's default PATH has no curl or ip on NixOS).
    SPAWN = "systemd-run --setenv=PATH=\"$PATH\""

    def in_node(node):
        # The absolute path of ip, resolved by the driver's shell: also right in a SPAWN.
        return f"$(command -v ip) netns exec {RUN}-{node} "

    def tcp(node, ip, port, secs):
        return in_node(node) + f"timeout {secs} bash -c 'exec 3<>/dev/tcp/{ip}/{port}'"

    def now_ms():
        return int(M[P["gateway"]["host"]].succeed("date +%s%3N").strip())

    def sql(db, query):
        pg = P["postgres"]
        return M[pg["host"]].succeed(f"runuser -u postgres -- psql -h /run/postgresql -d {db} -AtX -v ON_ERROR_STOP=1 -c \"{query}\"")

    def served(inst, route):
        metrics = M[inst["host"]].succeed(in_node(inst["node"]) + f"curl -sf -m 10 http://{inst['address']}:{inst['port']}/metrics")
        return int(sum(float(l.rsplit(" ", 1)[1]) for l in metrics.splitlines()
                       if l.startswith("http_requests_total{") and f'route="{route}' in l))

    def wait_host(h):
        for u in P["start"]:
            if u["host"] == h:
                M[h].wait_for_unit(u["unit"] + ".service")

    # ---- every host comes up with its share, the overlay and its services ---------------------
    start_all()
    for h in P["hosts"]:
        M[h].wait_for_unit("netns-kit-" + RUN + ".service")
    for u in P["start"]:
        M[u["host"]].wait_for_unit(u["unit"] + ".service")
    for h in P["hosts"]:
        listed = {l.split()[0] for l in M[h].succeed("ip netns list").splitlines() if l.strip()}
        for other, nodes in P["nodes"].items():
            for n in nodes:
                assert (f"{RUN}-{n}" in listed) == (other == h), f"{n} (placed on {other}) on {h}: {sorted(listed)}"
    for o in P["overlay"]:
        for h in o["hosts"]:
            M[h].succeed(f"ip -n {RUN}-fabric -d link show {o['name']} | grep -q 'vxlan id {o['vni']} '")

    # ---- tier isolation, real TCP both ways -----------------------------------------------------
    with subtest("tier policy holds across hosts"):
        listeners = {}
        for r in P["matrix"]:
            if r["port"] == P["probePort"]:
                listeners[r["to"]] = r
        for node, r in listeners.items():
            M[r["toHost"]].succeed(f"{SPAWN} --unit=nc-{node} " + in_node(node) + f"busybox nc -ll -p {P['probePort']} -e cat")
        for node, r in listeners.items():
            M[r["toHost"]].wait_until_succeeds(tcp(node, r["address"], P["probePort"], 2), timeout=30)
        closed = []
        for r in P["matrix"]:
            if r["allowed"]:
                try:
                    M[r["host"]].wait_until_succeeds(tcp(r["from"], r["address"], r["port"], 5), timeout=30)
                except Exception:
                    closed.append(f"{r['from']} -> {r['to']}:{r['port']}")
        assert not closed, f"allowed paths must connect: {closed}"
        opened = []
        for h in P["hosts"]:
            mine = [r for r in P["matrix"] if not r["allowed"] and r["host"] == h]
            if mine:
                probes = " ".join(f"( {tcp(r['from'], r['address'], r['port'], 3)} ) && echo 'OPEN {r['from']} -> {r['to']}:{r['port']}' &" for r in mine)
                opened += [l for l in M[h].succeed(probes + " wait").splitlines() if l.startswith("OPEN")]
        assert not opened, f"denied paths must be dropped: {opened}"

    # ---- routing over every product host; an order lands in PostgreSQL once ----------------------
    gw = P["gateway"]
    G = M[gw["host"]]
    def via_gateway(args):
        return G.succeed(in_node(gw["node"]) + f"curl -sf -m 20 {args}")

    with subtest("the gateway reaches every backend host; orders land in PostgreSQL"):
        before = {p["node"]: served(p, "/api/products") for p in P["products"]}
        G.succeed(in_node(gw["node"]) + "sh -c 'for i in $(seq 1 12); do curl -sf -m 20 -o /dev/null " + gw["url"] + "/api/products/1 || exit 1; done'")
        after = {p["node"]: served(p, "/api/products") for p in P["products"]}
        hosts_served = {p["host"] for p in P["products"] if after[p["node"]] > before[p["node"]]}
        assert hosts_served == set(P["productHosts"]), f"product hosts that served: {hosts_served}, expected {P['productHosts']} ({before} -> {after})"
        body = via_gateway("-X POST -H 'content-type: application/json' -H 'Idempotency-Key: routing-1' "
                           + "-d '{\"customer\":\"routing@example.com\",\"items\":[{\"product_id\":1,\"quantity\":2}]}' " + gw["url"] + "/api/orders")
        order = json.loads(body)
        assert order["status"] == "placed", body
        assert sql(P["orderDb"], f"select count(*) from orders where id = '{order['id']}'").strip() == "1"

    # ---- failover and partition of one backend host under load -----------------------------------
    def load_start(tag):
        d = f"/run/load-{tag}"
        G.succeed(f"mkdir -p {d}")
        gets = (f"while [ ! -e {d}/stop ]; do s=$(curl -s -o /dev/null -w '%{{http_code}}' -m 20 {gw['url']}/api/products/1); "
                f"echo \"$(date +%s%3N) - $s\" >> {d}/gets; sleep 0.05; done")
        orders = (f"i=0; while [ ! -e {d}/stop ]; do i=$((i+1)); key={tag}-$i; while :; do "
                  f"s=$(curl -s -o /dev/null -w '%{{http_code}}' -m 20 -X POST -H 'content-type: application/json' -H \"Idempotency-Key: $key\" "
                  f"-d \"{{\\\"customer\\\":\\\"$key@example.com\\\",\\\"items\\\":[{{\\\"product_id\\\":1,\\\"quantity\\\":1}}]}}\" {gw['url']}/api/orders); "
                  f"echo \"$(date +%s%3N) $key $s\" >> {d}/orders; [ \"$s\" = 201 ] && break; [ -e {d}/stop ] && break; sleep 0.2; done; sleep 0.2; done")
        for name, loop in (("gets", gets), ("orders", orders)):
            G.succeed(f"{SPAWN} --unit=load-{tag}-{name} " + in_node(gw["node"]) + "sh -c " + shlex.quote(loop))
        return d

    def load_stop(tag, d):
        G.succeed(f"touch {d}/stop")
        G.wait_until_succeeds(f"! systemctl is-active load-{tag}-gets load-{tag}-orders", timeout=60)
        def parse(name):
            out = []
            for l in G.succeed(f"cat {d}/{name}").splitlines():
                at, key, status = l.split(" ")
                out.append((int(at), key, int(status) if status.isdigit() else 0))
            return out
        return parse("gets"), parse("orders")

    def assert_guarantees(gets, orders, fault_ms, what):
        bound = fault_ms + P["ejectionBoundMs"]
        bad = [a for a in gets if a[0] > bound and a[2] != 200]
        assert not bad, f"{what}: GETs failed after the ejection bound: {bad}"
        assert any(a[0] > bound for a in gets), f"{what}: no GETs ran after the bound"
        bad = [a for a in orders if a[0] > bound and a[2] != 201]
        assert not bad, f"{what}: orders failed after the ejection bound: {bad}"
        assert any(a[0] > bound and a[2] == 201 for a in orders), f"{what}: no order accepted after the bound"
        acked = sorted({a[1] for a in orders if a[2] == 201})
        assert acked
        stored = dict(l.rsplit("|", 1) for l in sql(P["orderDb"], "select customer, count(*) from orders group by customer").splitlines() if "|" in l)
        for key in acked:
            assert stored.get(f"{key}@example.com") == "1", f"{what}: acknowledged order {key} must be stored exactly once (found {stored.get(key + '@example.com')})"

    def wait_rejoined(tag):
        fault = P["faultHost"]
        mine = [p for p in P["products"] if p["host"] == fault]
        mine_orders = [o for o in P["orders"] if o["host"] == fault]
        start = ({p["node"]: served(p, "/api/products") for p in mine}, {o["node"]: served(o, "/api/orders") for o in mine_orders})
        deadline = time.time() + 120
        n = 0
        while any(served(p, "/api/products") <= start[0][p["node"]] for p in mine) or any(served(o, "/api/orders") <= start[1][o["node"]] for o in mine_orders):
            assert time.time() < deadline, f"{fault}'s instances did not rejoin"
            n += 1
            G.execute(in_node(gw["node"]) + f"sh -c 'for i in 1 2 3 4; do curl -sf -m 20 -o /dev/null {gw['url']}/api/products/1; "
                      + f"curl -sf -m 20 -o /dev/null -X POST -H \"content-type: application/json\" -H \"Idempotency-Key: rejoin-{tag}-{n}-$i\" "
                      + f"-d \"{{\\\"customer\\\":\\\"rejoin-{tag}-{n}-$i@example.com\\\",\\\"items\\\":[{{\\\"product_id\\\":1,\\\"quantity\\\":1}}]}}\" {gw['url']}/api/orders; done; true'")

    F = M[P["faultHost"]]
    with subtest("crashing a backend host loses no request after the ejection bound"):
        d = load_start("crash")
        time.sleep(2)
        fault = now_ms()
        F.crash()
        time.sleep(P["afterFaultSeconds"])
        gets, orders = load_stop("crash", d)
        assert_guarantees(gets, orders, fault, "crash " + P["faultHost"])
        F.start()
        wait_host(P["faultHost"])
        wait_rejoined("crash")

    with subtest("partitioning a backend host loses no request after the ejection bound"):
        d = load_start("partition")
        time.sleep(2)
        fault = now_ms()
        F.block()
        time.sleep(P["afterFaultSeconds"])
        gets, orders = load_stop("partition", d)
        assert_guarantees(gets, orders, fault, "partition " + P["faultHost"])
        F.unblock()
        wait_rejoined("partition")
  '';
in
if missingVars != [ ] then
  fail "no value for the runtime vars ${toJSON missingVars}"
else if elem probePort declaredPorts then
  fail "probePort ${toString probePort} is a declared port"
else
  {
    inherit run topologyPath underlayDev testScript;
    name = layout.name;
    hosts = listToAttrs (map (h: { name = h; value = hostPlan h; }) hosts);
    inherit matrix faultHost productHosts;
    # The declaration as netns-kit applies it inside the VMs: only underlay.dev differs.
    topology = spec // { underlay = or' spec "underlay" { } // { dev = underlayDev; }; };
  }

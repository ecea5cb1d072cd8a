# The environment a declaration describes, resolved — the same value `lab layout --json FILE`
# prints (xtests/src/cli/layout.rs), computed with builtins only (no nixpkgs), so it can be
# evaluated on any machine with nix-instantiate:
#
#   nix-instantiate --store dummy:// --eval --strict --json \
#     -E 'import ./nix/layout.nix { file = ./ecomm-services/deploy/three-tier.toml; }'
#
# xtests/tests/nix_layout.rs compares the two on every environment file under
# ecomm-services/deploy/. The rules mirrored here, and where they live on the Rust side:
#   - router addresses: router.addresses.<net>, else the subnet's first host address
#     (netns-kit/src/topology/validate.rs, alloc.rs: first_host);
#   - node addresses: as written, else the lowest free host address of the subnet, where
#     "taken" is every written address, then every router default, then earlier allocations,
#     nodes and interfaces in file order (validate.rs, alloc.rs: allocate);
#   - bridge names: networks[].bridge, else "br-<name>", shortened to 15 bytes with a 4-hex
#     FNV-1a suffix (names.rs: derive_ifname); VXLAN names "vx-<network>" the same way;
#   - services: one instance per node, listening on the node's first address; placeholders
#     `${…}` resolved (service.rs: Here::one / Here::of), runtime `vars` left as `${var}`;
#     stage = 0 without dependencies, else 1 + the highest stage of the dependencies;
#   - overlay: one entry per network whose nodes (or router) sit on more than one host, VNI
#     vni_base (default 100) + the network's index, group = underlay.group + index, hosts
#     sorted (placement.rs: validate_placement, Placement::vxlan).
# IPv4 only: an IPv6 subnet or address is a `throw` naming it (the Rust side supports IPv6;
# no environment file of this project uses it). Validation is the Rust side's job
# (`netns-kit validate`); here a few mistakes that would otherwise give a wrong value throw.
{ file }:
let
  inherit (builtins)
    attrNames
    concatLists
    concatStringsSep
    elem
    elemAt
    filter
    foldl'
    fromTOML
    genList
    hasAttr
    head
    isList
    isString
    length
    listToAttrs
    map
    readFile
    split
    stringLength
    substring
    tail
    throw
    toString
    ;

  spec = fromTOML (readFile file);

  # ---- small helpers ------------------------------------------------------------------------
  strings = l: filter isString l;
  splitOn = sep: s: strings (split sep s);
  or' = set: name: default: if hasAttr name set then set.${name} else default;
  mod = a: b: a - (a / b) * b;
  pow2 = n: foldl' (acc: _: acc * 2) 1 (genList (x: x) n);
  imap0 = f: l: genList (i: f i (elemAt l i)) (length l);
  find = pred: l: let m = filter pred l; in if m == [ ] then null else head m;
  fail = what: throw "nix/layout.nix (${toString file}): ${what}";

  # ---- IPv4 ---------------------------------------------------------------------------------
  octet =
    what: s:
    if builtins.match "0|[1-9][0-9]{0,2}" s == null then
      fail "${what}: expected an IPv4 address (IPv6 is not handled by nix/layout.nix)"
    else
      let n = builtins.fromJSON s; in if n > 255 then fail "${what}: octet ${s} > 255" else n;
  parseIPv4 =
    what: s:
    let
      parts = splitOn "[.]" s;
    in
    if length parts != 4 then
      fail "${what}: ${s} is not an IPv4 address (IPv6 is not handled by nix/layout.nix)"
    else
      foldl' (acc: p: acc * 256 + octet "${what} (${s})" p) 0 parts;
  showIPv4 =
    n:
    concatStringsSep "." (map (k: toString (mod (n / pow2 (8 * (3 - k))) 256)) (genList (x: x) 4));
  parseCidr =
    what: s:
    let
      parts = splitOn "/" s;
      prefix = builtins.fromJSON (elemAt parts 1);
      size = pow2 (32 - prefix);
      addr = parseIPv4 what (head parts);
    in
    if length parts != 2 || builtins.match "[0-9]{1,2}" (elemAt parts 1) == null || prefix > 32 then
      fail "${what}: ${s} is not an IPv4 CIDR (IPv6 is not handled by nix/layout.nix)"
    else if mod addr size != 0 then
      fail "${what}: ${s} has host bits set"
    else
      {
        network = addr;
        inherit prefix size;
        text = "${showIPv4 addr}/${toString prefix}";
      };
  # alloc.rs: below /31 the network (and broadcast) address are reserved.
  reserved = net: a: net.prefix < 31 && (a == net.network || a == net.network + net.size - 1);
  contains = net: a: a >= net.network && a < net.network + net.size;
  allocate =
    net: taken:
    let
      go =
        c:
        if !(contains net c) || reserved net c then
          null
        else if hasAttr (toString c) taken then
          go (c + 1)
        else
          c;
    in
    go (if reserved net net.network then net.network + 1 else net.network);
  firstHost = net: allocate net { };

  # ---- interface names (names.rs) -----------------------------------------------------------
  ascii = " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\]^_`abcdefghijklmnopqrstuvwxyz{|}~";
  codes = listToAttrs (genList (i: {
    name = substring i 1 ascii;
    value = 32 + i;
  }) (stringLength ascii));
  chars = s: genList (i: substring i 1 s) (stringLength s);
  # h * 0x01000193 mod 2^32 without overflowing 64 bits: 0x01000193 = 2^24 + 403.
  mul32 = h: mod ((mod h 256) * 16777216 + h * 403) 4294967296;
  fnv1a = s: foldl' (h: c: mul32 (builtins.bitXor h codes.${c})) 2166136261 (chars s);
  hex4 =
    n:
    concatStringsSep "" (
      map (k: substring (mod (n / pow2 (4 * (3 - k))) 16) 1 "0123456789abcdef") (genList (x: x) 4)
    );
  deriveIfname =
    prefix: base:
    let
      full = prefix + base;
      hash = hex4 (mod (fnv1a base) 65536);
    in
    if stringLength full <= 15 then
      full
    else
      prefix + substring 0 (15 - stringLength prefix - 4) base + hash;

  # ---- networks, router, nodes --------------------------------------------------------------
  networkList = or' spec "networks" [ ];
  nets = listToAttrs (
    imap0 (i: n: {
      name = n.name;
      value = parseCidr "networks[${toString i}].subnet" n.subnet;
    }) networkList
  );
  netOf = what: name: if hasAttr name nets then nets.${name} else fail "${what}: unknown network ${name}";

  routerSpec = or' spec "router" null;
  routerName = if routerSpec == null then null else or' routerSpec "name" "router";
  routerNets = if routerSpec == null then [ ] else routerSpec.networks;
  routerWritten = if routerSpec == null then { } else or' routerSpec "addresses" { };
  nodeList = or' spec "nodes" [ ];

  # Every written address (router, then nodes), as numbers.
  written =
    map (n: parseIPv4 "router.addresses.${n}" routerWritten.${n}) (
      filter (n: hasAttr n routerWritten) routerNets
    )
    ++ concatLists (
      imap0 (
        i: node:
        map (itf: parseIPv4 "nodes[${toString i}] address" itf.address) (
          filter (itf: hasAttr "address" itf) (or' node "interfaces" [ ])
        )
      ) nodeList
    );
  mark = taken: a: taken // { ${toString a} = true; };
  takenWritten = foldl' mark { } written;

  routerAddrs = listToAttrs (
    map (n: {
      name = n;
      value =
        if hasAttr n routerWritten then
          parseIPv4 "router.addresses.${n}" routerWritten.${n}
        else
          let a = firstHost (netOf "router.networks" n); in if a == null then fail "subnet of ${n} is exhausted" else a;
    }) routerNets
  );
  takenRouter = foldl' mark takenWritten (
    map (n: routerAddrs.${n}) (filter (n: !(hasAttr n routerWritten)) routerNets)
  );

  # Node addresses in file order, allocating as the Rust side does: { taken; nodes = [ { name; itfs = [ { network; address } ] } ] }.
  allocated = foldl' (
    st: node:
    let
      r = foldl' (
        s: itf:
        let
          net = netOf "nodes.${node.name}.interfaces" itf.network;
          a =
            if hasAttr "address" itf then
              parseIPv4 "nodes.${node.name} address" itf.address
            else
              let x = allocate net s.taken; in if x == null then fail "nodes.${node.name}: subnet ${net.text} is exhausted" else x;
        in
        {
          taken = if hasAttr "address" itf then s.taken else mark s.taken a;
          itfs = s.itfs ++ [
            {
              network = itf.network;
              address = a;
            }
          ];
        }
      ) { inherit (st) taken; itfs = [ ]; } (or' node "interfaces" [ ]);
    in
    {
      taken = r.taken;
      nodes = st.nodes ++ [
        {
          name = node.name;
          itfs = r.itfs;
        }
      ];
    }
  ) { taken = takenRouter; nodes = [ ]; } nodeList;
  nodeItfs = listToAttrs (map (n: { name = n.name; value = n.itfs; }) allocated.nodes);

  # ---- placement ----------------------------------------------------------------------------
  placement = or' spec "placement" null;
  underlay = or' spec "underlay" { };
  hostNames = if placement == null then [ ] else attrNames placement;
  hostOf =
    node:
    if placement == null then null else find (h: elem node placement.${h}) hostNames;
  underlayAddr =
    h:
    let hs = or' underlay "hosts" { }; in
    if hasAttr h hs then showIPv4 (parseIPv4 "underlay.hosts.${h}" hs.${h}) else null;

  hosts = listToAttrs (
    map (h: {
      name = h;
      value = {
        nodes = placement.${h};
        underlay_address = underlayAddr h;
      };
    }) hostNames
  );

  networks = listToAttrs (
    imap0 (i: n: {
      name = n.name;
      value = {
        subnet = nets.${n.name}.text;
        bridge = or' n "bridge" (deriveIfname "br-" n.name);
        router_address = if elem n.name routerNets then showIPv4 routerAddrs.${n.name} else null;
      };
    }) networkList
  );

  addressesOf = itfs: listToAttrs (map (i: { name = i.network; value = showIPv4 i.address; }) itfs);
  nodes =
    (
      if routerSpec == null then
        { }
      else
        {
          ${routerName} = {
            host = hostOf routerName;
            router = true;
            addresses = listToAttrs (map (n: { name = n; value = showIPv4 routerAddrs.${n}; }) routerNets);
          };
        }
    )
    // listToAttrs (
      map (n: {
        name = n.name;
        value = {
          host = hostOf n.name;
          router = false;
          addresses = addressesOf n.itfs;
        };
      }) allocated.nodes
    );

  # ---- services (service.rs) ----------------------------------------------------------------
  vars = or' spec "vars" [ ];
  serviceList = or' spec "services" [ ];
  declared = listToAttrs (
    map (s: {
      name = s.name;
      value = rec {
        inherit (s) name;
        instanceNodes =
          if hasAttr "node" s then
            [ s.node ]
          else if hasAttr "nodes" s then
            s.nodes
          else
            fail "services.${s.name}: expected one of node / nodes";
        addrOf =
          n:
          if !(hasAttr n nodeItfs) then
            fail "services.${s.name}: unknown node ${n}"
          else if nodeItfs.${n} == [ ] then
            fail "services.${s.name}: node ${n} has no interface"
          else
            (head nodeItfs.${n}).address;
        instances = map (n: { node = n; address = addrOf n; }) instanceNodes;
        port = or' s "port" null;
        ports = or' s "ports" { };
        data = or' s "data" { };
        depends_on = or' s "depends_on" [ ];
      };
    }) serviceList
  );

  stage =
    name: path:
    if elem name path then
      fail "dependency cycle: ${concatStringsSep " -> " (path ++ [ name ])}"
    else if !(hasAttr name declared) then
      fail "unknown service ${name} in depends_on"
    else
      foldl' (m: d: let x = stage d (path ++ [ name ]) + 1; in if x > m then x else m) 0 declared.${name}.depends_on;

  socket = a: p: "${showIPv4 a}:${toString p}";
  # A property of service `d` (the part after `self.` / `services.<name>.`).
  prop =
    what: d: rest:
    let
      need = x: if x == null then fail "${what}: service ${d.name} declares no `port`" else x;
      one =
        if length d.instances == 1 then
          (head d.instances).address
        else
          fail "${what}: service ${d.name} has ${toString (length d.instances)} instances: expected one";
    in
    if rest == [ "name" ] then
      d.name
    else if rest == [ "port" ] then
      toString (need d.port)
    else if rest == [ "host" ] then
      showIPv4 one
    else if rest == [ "address" ] then
      socket one (need d.port)
    else if rest == [ "addresses" ] then
      concatStringsSep "," (map (i: socket i.address (need d.port)) d.instances)
    else if length rest == 2 && head rest == "ports" && hasAttr (elemAt rest 1) d.ports then
      toString d.ports.${elemAt rest 1}
    else if length rest == 2 && head rest == "data" && hasAttr (elemAt rest 1) d.data then
      d.data.${elemAt rest 1}
    else
      fail "${what}: unknown placeholder";
  placeholder =
    what: d: inst: p:
    let
      parts = splitOn "[.]" p;
    in
    if elem p vars then
      "\${${p}}"
    else if parts == [ "node" "name" ] then
      inst.node
    else if parts == [ "node" "address" ] then
      showIPv4 inst.address
    else if parts == [ "self" "listen" ] then
      socket inst.address (if d.port == null then fail "${what}: ${p}: no `port`" else d.port)
    else if head parts == "self" then
      prop "${what}: \${${p}}" d (tail parts)
    else if head parts == "services" && length parts >= 2 then
      let
        name = elemAt parts 1;
      in
      if hasAttr name declared then
        prop "${what}: \${${p}}" declared.${name} (tail (tail parts))
      else
        fail "${what}: \${${p}}: no service ${name}"
    else
      fail "${what}: unknown placeholder \${${p}}";
  # service.rs `expand`: every `${…}` up to the first `}`; a `${` with no `}` takes the rest.
  resolve =
    what: d: inst: text:
    concatStringsSep "" (
      map (
        seg:
        if isList seg then
          placeholder what d inst (head seg)
        else
          let
            parts = splitOn "[$][{]" seg;
          in
          if length parts == 1 then
            seg
          else
            head parts + placeholder what d inst (concatStringsSep "\${" (tail parts))
      ) (split "[$][{]([^}]*)[}]" text)
    );

  readyOf =
    s: d:
    if !(hasAttr "ready" s) then
      { probe = "none"; }
    else
      let
        r = s.ready;
        port =
          if hasAttr "port" r then
            (if hasAttr r.port d.ports then d.ports.${r.port} else fail "services.${s.name}.ready.port: ${r.port} is not one of the ports")
          else if d.port == null then
            fail "services.${s.name}.ready: a probe needs the service's port"
          else
            d.port;
      in
      if r.probe == "tcp" then
        { probe = "tcp"; inherit port; }
      else if r.probe == "http" then
        { probe = "http"; inherit port; path = r.path; }
      else
        fail "services.${s.name}.ready.probe: unknown probe ${r.probe}";

  services = listToAttrs (
    imap0 (i: s: let d = declared.${s.name}; in {
      name = s.name;
      value = {
        inherit (d) port ports data depends_on;
        ready = readyOf s d;
        stage = stage s.name [ ];
        instances = listToAttrs (
          map (inst: {
            name = inst.node;
            value = {
              host = hostOf inst.node;
              address = showIPv4 inst.address;
              command = imap0 (k: a: resolve "services[${toString i}].command[${toString k}]" d inst a) s.command;
              env = builtins.mapAttrs (k: v: resolve "services[${toString i}].env.${k}" d inst v) (or' s "env" { });
            };
          }) d.instances
        );
      };
    }) serviceList
  );

  # ---- the derived overlay (placement.rs) ---------------------------------------------------
  vniBase = or' underlay "vni_base" 100;
  group = if hasAttr "group" underlay then parseIPv4 "underlay.group" underlay.group else null;
  onNet =
    net: name:
    if name == routerName then
      elem net routerNets
    else if hasAttr name nodeItfs then
      builtins.any (i: i.network == net) nodeItfs.${name}
    else
      false;
  overlay =
    if placement == null then
      [ ]
    else
      filter (o: o != null) (
        imap0 (
          i: n:
          let
            spanned = filter (h: builtins.any (onNet n.name) placement.${h}) hostNames;
          in
          if length spanned < 2 then
            null
          else
            {
              network = n.name;
              name = deriveIfname "vx-" n.name;
              vni = vniBase + i;
              port = or' underlay "port" 4789;
              dev = or' underlay "dev" null;
              group = if group == null then null else showIPv4 (group + i);
              hosts = spanned;
              endpoints = listToAttrs (
                map (h: {
                  name = h;
                  value = {
                    local = underlayAddr h;
                    remote =
                      if group != null then
                        null
                      else
                        let
                          other = find (x: x != h) spanned;
                          a = if other == null then null else underlayAddr other;
                        in
                        if a == null then "0.0.0.0" else a;
                  };
                }) spanned
              );
            }
        ) networkList
      );
in
{
  name = spec.name;
  inherit
    vars
    hosts
    networks
    nodes
    services
    overlay
    ;
}

// The graph explorer: draws an entity's neighbourhood with Cytoscape.js, from the service's own API.
"use strict";

const state = { token: "", cy: null };
const $ = (id) => document.getElementById(id);

function say(text, isError) {
  $("status").textContent = text;
  $("status").className = isError ? "error" : "";
}

async function api(path, collection, headers) {
  const all = Object.assign({ Authorization: "Bearer " + state.token }, headers || {});
  if (collection) all.ercollectionid = collection;
  const response = await fetch(path, { headers: all });
  const body = await response.json();
  if (!response.ok) {
    const error = new Error(body.status ? body.status.message : response.statusText);
    error.status = response.status;
    throw error;
  }
  return body;
}

function nodeId(collection, id) { return collection + "/" + id; }
function shortType(type) { return (type || "").split("__").pop(); }

async function connect() {
  state.token = $("token").value.trim();
  const body = await api("/apollo/collections", null, { PageSize: "1000" });
  const select = $("collection");
  select.innerHTML = "";
  for (const item of body.data) {
    const option = document.createElement("option");
    option.value = option.textContent = item.collectionId;
    select.appendChild(option);
  }
  say(body.data.length + " collections");
}

async function find() {
  const collection = $("collection").value;
  const text = $("search").value.trim().toLowerCase();
  const found = new Map();
  try {  // an exact id first: the list below holds the first 1,000 entities only
    const exact = await api("/apollo/er/entities/" + encodeURIComponent($("search").value.trim()), collection);
    for (const entity of exact.data) found.set(entity.id, entity);
  } catch (error) {
    if (error.status !== 404 && error.status !== 400) throw error;
  }
  const page = await api("/apollo/er/entities", collection, { PageSize: "1000" });
  for (const entity of page.data) {
    const name = String(entity.entityName || "").toLowerCase();
    if (entity.id.toLowerCase().includes(text) || name.includes(text)) found.set(entity.id, entity);
  }
  const select = $("matches");
  select.innerHTML = "";
  for (const entity of found.values()) {
    const option = document.createElement("option");
    option.value = entity.id;
    option.textContent = (entity.entityName || entity.id) + " (" + shortType(entity.entityType) + ")";
    select.appendChild(option);
  }
  say(found.size + " entities match");
}

function addNode(node) {
  const key = nodeId(node.erCollectionId, node.id);
  if (state.cy.getElementById(key).nonempty()) return;
  state.cy.add({ group: "nodes", data: {
    id: key, entityId: node.id, collection: node.erCollectionId,
    label: (node.entity.entityName || node.id) + "\n" + shortType(node.entity.entityType) + " · " + node.erCollectionId,
  } });
}

function addEdge(edge) {
  const key = nodeId(edge.sourceERCollectionId, edge.id);
  if (state.cy.getElementById(key).nonempty()) return;
  const destination = edge.destinationERCollectionId || edge.sourceERCollectionId;
  state.cy.add({ group: "edges", classes: destination !== edge.sourceERCollectionId ? "cross" : "", data: {
    id: key, source: nodeId(edge.sourceERCollectionId, edge.sourceEntityId),
    target: nodeId(destination, edge.destinationEntityId),
    label: edge.brickRelationshipName || shortType(edge.relationshipType),
  } });
}

async function expand(collection, id) {
  const body = await api("/apollo/er/entities/" + encodeURIComponent(id) + "/graph?depth=1", collection);
  body.data.nodes.forEach(addNode);
  body.data.edges.forEach(addEdge);
  state.cy.layout({ name: "cose", animate: false }).run();
  say(state.cy.nodes().length + " entities drawn" + (body.data.truncated ? " (cut at the limit)" : ""));
}

async function show(collection, id) {
  const path = "/apollo/er/entities/" + encodeURIComponent(id);
  const entity = await api(path, collection);
  const versions = await api(path + "/versions", collection, { PageSize: "1000" });
  $("title").textContent = id + " · " + collection;
  $("document").textContent = JSON.stringify(entity.data[0], null, 2);
  $("versions").textContent = JSON.stringify(versions.data.map((v) => ({
    version: v.sysData && v.sysData.sysEntityVersion, updatedAt: v.sysData && v.sysData.sysUpdatedAt,
    updatedBy: v.sysData && v.sysData.sysUpdatedBy, isActive: v.isActive })), null, 2);
}

async function open(collection, id) {
  state.cy.elements().remove();
  await expand(collection, id);
  await show(collection, id);
}

function guarded(action) {
  return () => action().catch((error) => say(error.message, true));
}

window.addEventListener("load", () => {
  state.cy = cytoscape({
    container: $("graph"),
    style: [
      { selector: "node", style: { label: "data(label)", "text-wrap": "wrap", "font-size": 9,
                                   "background-color": "#2563eb", width: 18, height: 18 } },
      { selector: "edge", style: { label: "data(label)", "font-size": 8, width: 1.5, "curve-style": "bezier",
                                   "target-arrow-shape": "triangle", "line-color": "#9ca3af",
                                   "target-arrow-color": "#9ca3af" } },
      { selector: "edge.cross", style: { "line-style": "dashed", "line-color": "#d97706",
                                         "target-arrow-color": "#d97706" } },
    ],
  });
  state.cy.on("tap", "node", (event) => {
    const data = event.target.data();
    guarded(async () => { await expand(data.collection, data.entityId); await show(data.collection, data.entityId); })();
  });
  $("connect").addEventListener("click", guarded(connect));
  $("find").addEventListener("click", guarded(find));
  $("open").addEventListener("click", guarded(() => open($("collection").value, $("matches").value)));
  // what a test (or a console user) drives the page with
  window.explorer = { state, connect, find, open, expand, show,
                      drawn: () => state.cy.nodes().map((node) => node.id()).sort() };
});

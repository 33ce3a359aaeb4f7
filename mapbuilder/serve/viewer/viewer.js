// The roadswarm map viewer: MapLibre GL with the API's layers, frame positions and a frame panel.
// Everything comes from this server; the style is built here, with no external fonts or glyphs.
"use strict";

const params = new URLSearchParams(window.location.search);
const state = { key: params.get("key") || window.localStorage.getItem("roadswarm-key") || "", framesAsked: 0 };
const $ = (id) => document.getElementById(id);

function status(text) { $("status").textContent = text; }

async function api(path) {
  const answer = await fetch(path, { headers: state.key ? { "X-API-Key": state.key } : {} });
  const body = await answer.json();
  if (!answer.ok) throw new Error(body.message || answer.statusText);
  return body;
}

function tileUrl(layer) {
  // Map clients cannot set headers on tile requests, so the key goes in the query.
  const base = `${window.location.origin}/tiles/${layer.name}/{z}/{x}/{y}.${layer.format}`;
  return layer.public || !state.key ? base : `${base}?key=${encodeURIComponent(state.key)}`;
}

function source(layer) {
  const common = { tiles: [tileUrl(layer)], minzoom: layer.minzoom, maxzoom: layer.maxzoom };
  return layer.kind === "vector" ? { type: "vector", ...common } : { type: "raster", tileSize: 256, ...common };
}

function buildStyle(layers) {
  const sources = { frames: { type: "geojson", data: { type: "FeatureCollection", features: [] } } };
  for (const layer of layers) sources[layer.name] = source(layer);
  const mapLayers = [{ id: "background", type: "background", paint: { "background-color": "#e8e4da" } }];
  if (sources.freshness) mapLayers.push({ id: "freshness", type: "raster", source: "freshness", paint: { "raster-opacity": 0.7 } });
  if (sources.imagery) mapLayers.push({ id: "imagery", type: "raster", source: "imagery" });
  if (sources.coverage) {
    mapLayers.push({
      id: "coverage", type: "line", source: "coverage", "source-layer": "coverage",
      paint: {
        "line-color": ["interpolate", ["linear"], ["coalesce", ["get", "coverage"], 0], 0, "#bbbbbb", 1, "#2166ac"],
        "line-width": ["interpolate", ["linear"], ["coalesce", ["get", "coverage"], 0], 0, 1, 1, 4],
      },
    });
  }
  mapLayers.push({
    id: "frames", type: "circle", source: "frames",
    paint: { "circle-radius": 6, "circle-color": "#ff7f00", "circle-stroke-color": "#fff", "circle-stroke-width": 1.5 },
  });
  return { version: 8, sources, layers: mapLayers };
}

function timeWindow() {
  const from = $("time-from").value, to = $("time-to").value;
  const query = new URLSearchParams();
  if (from) query.set("start", `${from}T00:00:00Z`);
  if (to) query.set("end", `${to}T23:59:59Z`);
  return query;
}

function styleLoaded(map) {
  // The frames source exists once the style is parsed ('style.load', shortly after the constructor).
  return map.getSource("frames") ? Promise.resolve() : new Promise((resolve) => map.once("style.load", resolve));
}

const FRAMES_MIN_ZOOM = 13;  // below it a view is larger than an imagery query may cover
const NO_FRAMES = { type: "FeatureCollection", features: [] };

function framesQuery(map) {
  const b = map.getBounds();
  const query = timeWindow();
  query.set("bbox", [b.getWest(), b.getSouth(), b.getEast(), b.getNorth()].map((v) => v.toFixed(6)).join(","));
  return query;
}

async function loadFrames(map) {
  if (!state.key) return;
  const asked = ++state.framesAsked;  // a slow answer for an older view must not replace a newer one
  try {
    const zoomedIn = map.getZoom() >= FRAMES_MIN_ZOOM;
    const frames = zoomedIn ? await api(`/v1/frames.geojson?${framesQuery(map)}`) : NO_FRAMES;
    await styleLoaded(map);
    if (asked !== state.framesAsked) return;
    map.getSource("frames").setData(frames);
    $("frame-count").textContent = zoomedIn ? `${frames.features.length} frames in view` : "zoom in to see frames";
    status("");
  } catch (error) {
    status(`frames: ${error.message}`);
  }
}

async function showFrame(frameId) {
  try {
    const frame = await api(`/v1/frames/${frameId}`);
    $("frame").hidden = false;
    $("frame-image").src = frame.image_url;
    $("frame-time").textContent = frame.captured_at;
    $("frame-segment").textContent = frame.segment_id || "not matched";
    $("frame-heading").textContent = `${frame.heading_deg.toFixed(0)}°`;
  } catch (error) {
    status(`frame: ${error.message}`);
  }
}

async function initialView(layers) {
  // Start where the frames are: the coverage or imagery bounds, else the whole world.
  for (const name of ["imagery", "coverage", "freshness"]) {
    const layer = layers.find((l) => l.name === name);
    if (!layer) continue;
    try {
      const tilejson = await api(`${layer.tilejson}${state.key ? `?key=${encodeURIComponent(state.key)}` : ""}`);
      if (tilejson.bounds[2] - tilejson.bounds[0] < 300) return tilejson.bounds;
    } catch (error) {
      status(`${name}: ${error.message}`);
    }
  }
  return [-180, -70, 180, 80];
}

function wireControls(map) {
  for (const box of document.querySelectorAll("#legend input[type=checkbox]")) {
    box.addEventListener("change", () => {
      if (map.getLayer(box.dataset.layer)) map.setLayoutProperty(box.dataset.layer, "visibility", box.checked ? "visible" : "none");
    });
  }
  for (const input of [$("time-from"), $("time-to")]) input.addEventListener("change", () => loadFrames(map));
  map.on("moveend", () => loadFrames(map));
  map.on("click", "frames", (event) => showFrame(event.features[0].properties.frame_id));
  map.on("mouseenter", "frames", () => { map.getCanvas().style.cursor = "pointer"; });
  map.on("mouseleave", "frames", () => { map.getCanvas().style.cursor = ""; });
}

async function start() {
  $("key-form").hidden = Boolean(state.key);
  $("key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    window.localStorage.setItem("roadswarm-key", $("key-input").value.trim());
    window.location.search = "";
  });
  const { layers } = await api("/v1/layers");
  const bounds = await initialView(layers);
  const map = new maplibregl.Map({ container: "map", style: buildStyle(layers), bounds, maxZoom: 22 });
  map.addControl(new maplibregl.NavigationControl());
  window.roadswarmMap = map;  // for tests and the browser console
  wireControls(map);
  // Ask for the frames now, not on 'load' or 'idle': MapLibre fires those only from a repaint,
  // and a tile answered 404 (outside the coverage, normal here) triggers none. When such a tile
  // was the last of the first view to arrive, neither event came until the map moved. The view's
  // bounds are known since the constructor; the data waits only for the style (loadFrames).
  loadFrames(map);
}

start().catch((error) => status(error.message));

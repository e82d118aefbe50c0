"""Hover images for a Plotly map: a point's image and words beside the cursor.

Plotly's hover labels take text only and Streamlit sends no hover events, so a small component (Streamlit's
components v2, which run in the app's page, not in an iframe) listens to the map's own `plotly_hover` and
shows the hovered item's thumbnail. The thumbnails come as data URIs keyed by item id (the first custom
datum of each point, as the map carries it); the words are the second."""

from __future__ import annotations

import streamlit as st

JS = """
export default function(component) {
  const { data } = component;
  const chartClass = `st-key-${data.chart}`;
  const tip = document.createElement('div');
  tip.className = 'xmr-hover-image';
  tip.setAttribute('data-testid', 'xmr-hover-image');
  Object.assign(tip.style, {position: 'fixed', display: 'none', zIndex: 1000, pointerEvents: 'none',
    background: 'white', border: '1px solid #bbb', borderRadius: '6px', padding: '6px',
    boxShadow: '0 2px 8px rgba(0,0,0,.2)', font: '13px sans-serif', color: '#222', textAlign: 'center'});
  const img = document.createElement('img');
  img.style.display = 'block';
  img.style.margin = '0 auto 4px';
  const words = document.createElement('div');
  tip.append(img, words);
  document.body.appendChild(tip);
  const hover = (ev) => {
    const p = ev.points && ev.points[0];
    const uri = p && p.customdata && data.images[String(p.customdata[0])];
    if (!uri) { tip.style.display = 'none'; return; }
    img.src = uri;
    img.alt = words.textContent = String(p.customdata[1]);
    const e = ev.event || {};
    tip.style.left = `${(e.clientX || 0) + 16}px`;
    tip.style.top = `${Math.max(0, (e.clientY || 0) - 110)}px`;
    tip.style.display = 'block';
  };
  const unhover = () => { tip.style.display = 'none'; };
  let graph = null;
  const attach = () => {  // the map may be drawn after this component, and drawn again on reruns
    const gd = document.querySelector(`.${chartClass} .js-plotly-plot`);
    if (gd && gd !== graph && typeof gd.on === 'function') {
      graph = gd;
      gd.on('plotly_hover', hover);
      gd.on('plotly_unhover', unhover);
    }
  };
  attach();
  const timer = setInterval(attach, 500);
  return () => {
    clearInterval(timer);
    if (graph && graph.removeListener) {
      graph.removeListener('plotly_hover', hover);
      graph.removeListener('plotly_unhover', unhover);
    }
    tip.remove();
  };
}
"""

_component = st.components.v2.component("xmr_map_hover_images", js=JS)


def hover_images(chart_key: str, images: dict[int, str], key: str) -> None:
    """Show `images` (item id -> data URI) when a point of the keyed Plotly chart is hovered."""
    _component(data={"chart": chart_key, "images": {str(k): v for k, v in images.items()}}, key=key)

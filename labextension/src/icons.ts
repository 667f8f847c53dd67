import { LabIcon } from '@jupyterlab/ui-components';

/**
 * The nb2prod icon: three steps joined into a pipeline. `jp-icon3` lets the theme colour it.
 */
const PIPELINE_SVG = `<svg xmlns="http://www.w3.org/2000/svg" width="16" viewBox="0 0 24 24">
  <g class="jp-icon3" fill="#616161">
    <path d="M5 2.5a3 3 0 0 1 1 5.83V11h7a3 3 0 0 1 3 3v1.67a3 3 0 1 1-2 0V14a1 1 0 0 0-1-1H6v2.67a3 3 0 1 1-2 0V8.33A3 3 0 0 1 5 2.5zm0 2a1 1 0 1 0 0 2 1 1 0 0 0 0-2zm0 13a1 1 0 1 0 0 2 1 1 0 0 0 0-2zm10 0a1 1 0 1 0 0 2 1 1 0 0 0 0-2z"/>
    <path d="M17 3.5h4v4h-4zM9 5h7v1.5H9z"/>
  </g>
</svg>`;

export const pipelineIcon = new LabIcon({
  name: 'nb2prod:pipeline',
  svgstr: PIPELINE_SVG
});

/**
 * The tag reference, straight from the grammar: every tag, its role and what it does.
 */
import { Dialog, showDialog } from '@jupyterlab/apputils';
import { ReactWidget } from '@jupyterlab/ui-components';
import * as React from 'react';

import { GRAMMAR, roleHue, roleLabel } from './grammar';

function spelling(tag: string, name: string): string {
  switch (name) {
    case 'optional':
      return `${tag}, ${tag}:NAME`;
    case 'required':
      return `${tag}:NAME`;
    default:
      return tag;
  }
}

function Reference(): JSX.Element {
  return (
    <div className="nb2prod-Reference">
      <p>
        Tags live in each cell&apos;s standard tags. An untagged cell belongs to
        the step above it; cells before the first step belong to none. NAME is
        lower-case letters, digits and underscores.
      </p>
      <table>
        <thead>
          <tr>
            <th scope="col">tag</th>
            <th scope="col">role</th>
            <th scope="col">meaning</th>
          </tr>
        </thead>
        <tbody>
          {GRAMMAR.tags.map(t => (
            <tr key={t.tag}>
              <td>
                <code>{spelling(t.tag, t.name)}</code>
              </td>
              <td>
                {t.role && (
                  <span
                    className="nb2prod-Chip"
                    data-nb2prod-hue={roleHue(t.role)}
                  >
                    {roleLabel(t.role)}
                  </span>
                )}
              </td>
              <td>{t.doc}</td>
            </tr>
          ))}
        </tbody>
      </table>
      <p className="nb2prod-muted">
        Other tools&apos; tags ({GRAMMAR.foreign_tags.slice(0, 3).join(', ')},
        …) are left alone. Any other tag is reported as a problem.
      </p>
    </div>
  );
}

/**
 * Show the tag reference in a dialog.
 */
export async function showTagReference(): Promise<void> {
  await showDialog({
    title: 'Pipeline Tags',
    body: ReactWidget.create(<Reference />),
    buttons: [Dialog.okButton({ label: 'Close' })]
  });
}

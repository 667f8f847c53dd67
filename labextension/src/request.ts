import { URLExt } from '@jupyterlab/coreutils';

import { ServerConnection } from '@jupyterlab/services';

/**
 * Call the nb2prod server extension.
 *
 * @param endPoint API REST end point, relative to `/nb2prod/`
 * @param serverSettings The server settings to use for the request
 * @param init Initial values for the request
 * @returns The response body interpreted as JSON
 * @throws ServerConnection.ResponseError when the answer is not 2xx; its `message` is the
 *   server's `message`, and the parsed body is on `body` (see {@link APIError}).
 */
export async function requestAPI<T>(
  endPoint: string,
  serverSettings: ServerConnection.ISettings,
  init: RequestInit = {}
): Promise<T> {
  const requestUrl = URLExt.join(serverSettings.baseUrl, 'nb2prod', endPoint);

  let response: Response;
  try {
    response = await ServerConnection.makeRequest(
      requestUrl,
      init,
      serverSettings
    );
  } catch (error) {
    throw new ServerConnection.NetworkError(error as any);
  }

  let data: any = await response.text();

  if (data.length > 0) {
    try {
      data = JSON.parse(data);
    } catch {
      console.log('Not a JSON response body.', response);
    }
  }

  if (!response.ok) {
    throw new APIError(response, data);
  }

  return data;
}

/**
 * An error answer of the server extension, with its parsed body.
 */
export class APIError extends ServerConnection.ResponseError {
  constructor(response: Response, body: any) {
    const message =
      body && typeof body === 'object' && typeof body.message === 'string'
        ? body.message
        : typeof body === 'string' && body
          ? body
          : `${response.status} ${response.statusText}`;
    super(response, message);
    this.body = body;
  }

  /**
   * The parsed JSON body (or text) of the answer.
   */
  readonly body: any;
}

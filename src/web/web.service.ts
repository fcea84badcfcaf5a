import { Injectable } from '@nestjs/common';
import { notFound } from '../common/errors.js';
import { loadStaticFiles, matchesEtag, PAGE_HEADERS, StaticFile } from './static-files.js';

export interface StaticAnswer {
  status: 200 | 304;
  headers: Record<string, string>;
  body?: Buffer;
}

/** Serves the live page's allowlisted files from memory, with their validators and security headers. */
@Injectable()
export class WebService {
  private readonly files: Map<string, StaticFile> = loadStaticFiles();

  /** The answer for one allowlisted name; 404 in the error envelope for any other name. */
  serve(name: string, ifNoneMatch: string | undefined): StaticAnswer {
    const file = name === 'index.html' ? undefined : this.files.get(name);
    return this.answer(file, name, ifNoneMatch);
  }

  page(ifNoneMatch: string | undefined): StaticAnswer {
    return this.answer(this.files.get('index.html'), 'index.html', ifNoneMatch);
  }

  private answer(file: StaticFile | undefined, name: string, ifNoneMatch: string | undefined): StaticAnswer {
    if (!file) throw notFound(`No such file of the live page: ${name}`, { file: name });
    const headers = { ...PAGE_HEADERS, etag: file.etag };
    if (matchesEtag(ifNoneMatch, file.etag)) return { status: 304, headers };
    return { status: 200, headers: { ...headers, 'content-type': file.contentType }, body: file.body };
  }
}

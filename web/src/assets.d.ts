/** Stylesheets are imported for their side effect; Bun.build emits them as a CSS asset. */
declare module "*.css";

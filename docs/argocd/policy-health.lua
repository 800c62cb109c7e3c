-- Argo CD health of a tenancy.tenantops.io BackupPolicy or RetentionPolicy, from the conditions
-- tenant-operator writes (api/v1alpha1/conditions.go): Ready, and Stalled=True while the policy
-- needs its owner (an invalid spec, a Secret that does not exist). A BackupPolicy with
-- spec.suspend is Suspended, as Argo CD shows other paused schedules. Written for Argo CD's Lua
-- VM without its standard libraries (base and table only, as argocd-cm scripts run).
local hs = {}

local function condition(conditionType)
  if obj.status == nil or obj.status.conditions == nil then
    return nil
  end
  for _, c in ipairs(obj.status.conditions) do
    if c.type == conditionType then
      return c
    end
  end
  return nil
end

if obj.metadata.deletionTimestamp ~= nil then
  hs.status = "Progressing"
  hs.message = "The " .. obj.kind .. " is being deleted"
  return hs
end

local ready = condition("Ready")
if ready == nil then
  hs.status = "Progressing"
  hs.message = "Waiting for tenant-operator to check the " .. obj.kind
  return hs
end

if obj.metadata.generation ~= nil and obj.status.observedGeneration ~= obj.metadata.generation then
  hs.status = "Progressing"
  hs.message = "Waiting for tenant-operator to check generation " .. obj.metadata.generation
  return hs
end

local stalled = condition("Stalled")
if ready.status == "False" or (stalled ~= nil and stalled.status == "True") then
  hs.status = "Degraded"
  hs.message = ready.message
  return hs
end

if ready.status == "True" then
  if obj.spec ~= nil and obj.spec.suspend == true then
    hs.status = "Suspended"
    hs.message = "Backups and verifications of this policy's tenants are suspended (spec.suspend)"
    return hs
  end
  hs.status = "Healthy"
  hs.message = ready.message
  return hs
end

hs.status = "Progressing"
hs.message = ready.message
return hs

"""The protobuf field table of every kind whose request bodies apiserver/protobuf.py decodes.

Kubernetes' Go types carry their protobuf field numbers in struct tags (the same numbers
as the `generated.proto` files of k8s.io/api and k8s.io/apimachinery). This table restates
them as data, one entry per message, reachable from the served kinds plus meta/v1
DeleteOptions, autoscaling/v1 Scale, core/v1 Binding, policy/v1 Eviction and
authentication/v1 TokenRequest.

Each message is a space-separated list of fields `jsonName=number:type`:

* type is a scalar code (`s` string, `y` bytes, `i` any varint integer, `b` bool), a
  well-known apimachinery type (`Time`, `MicroTime`, `IntOrString`, `Quantity`,
  `FieldsV1`) or another message of this table;
* `[]type` is a repeated field, `{}type` a map keyed by string;
* a trailing `!` marks a scalar whose zero value is meaningful (a Go pointer, or a field
  without `omitempty`), so a decoded zero is kept instead of dropped;
* an empty jsonName is a Go struct embedded with `json:",inline"`: its fields are merged
  into the parent object (Volume's VolumeSource, Probe's ProbeHandler, ...).

Names are the Go type names; discovery/v1's EndpointPort, which collides with core/v1's,
is qualified as `discovery.EndpointPort`.
"""

MESSAGES: dict[str, str] = {
    "Namespace": "metadata=1:ObjectMeta spec=2:NamespaceSpec status=3:NamespaceStatus",
    "Pod": "metadata=1:ObjectMeta spec=2:PodSpec status=3:PodStatus",
    "Service": "metadata=1:ObjectMeta spec=2:ServiceSpec status=3:ServiceStatus",
    "Endpoints": "metadata=1:ObjectMeta subsets=2:[]EndpointSubset",
    "Node": "metadata=1:ObjectMeta spec=2:NodeSpec status=3:NodeStatus",
    "ConfigMap": "metadata=1:ObjectMeta data=2:{}s binaryData=3:{}y immutable=4:b!",
    "Secret": "metadata=1:ObjectMeta data=2:{}y type=3:s stringData=4:{}s immutable=5:b!",
    "Event": (
        "metadata=1:ObjectMeta involvedObject=2:ObjectReference reason=3:s message=4:s "
        "source=5:EventSource firstTimestamp=6:Time lastTimestamp=7:Time count=8:i type=9:s "
        "eventTime=10:MicroTime series=11:EventSeries action=12:s related=13:ObjectReference "
        "reportingComponent=14:s! reportingInstance=15:s!"
    ),
    "ServiceAccount": (
        "metadata=1:ObjectMeta secrets=2:[]ObjectReference "
        "imagePullSecrets=3:[]LocalObjectReference automountServiceAccountToken=4:b!"
    ),
    "Binding": "metadata=1:ObjectMeta target=2:ObjectReference",
    "Deployment": "metadata=1:ObjectMeta spec=2:DeploymentSpec status=3:DeploymentStatus",
    "ReplicaSet": "metadata=1:ObjectMeta spec=2:ReplicaSetSpec status=3:ReplicaSetStatus",
    "StatefulSet": "metadata=1:ObjectMeta spec=2:StatefulSetSpec status=3:StatefulSetStatus",
    "EndpointSlice": (
        "metadata=1:ObjectMeta endpoints=2:[]Endpoint ports=3:[]discovery.EndpointPort "
        "addressType=4:s!"
    ),
    "Lease": "metadata=1:ObjectMeta spec=2:LeaseSpec",
    "Scale": "metadata=1:ObjectMeta spec=2:ScaleSpec status=3:ScaleStatus",
    "Eviction": "metadata=1:ObjectMeta deleteOptions=2:DeleteOptions",
    "TokenRequest": "metadata=1:ObjectMeta spec=2:TokenRequestSpec status=3:TokenRequestStatus",
    "TokenRequestSpec": (
        "audiences=1:[]s expirationSeconds=4:i boundObjectRef=3:BoundObjectReference"
    ),
    "BoundObjectReference": "kind=1:s apiVersion=2:s name=3:s uid=4:s",
    "TokenRequestStatus": "token=1:s expirationTimestamp=2:Time",
    "DeleteOptions": (
        "gracePeriodSeconds=1:i! preconditions=2:Preconditions orphanDependents=3:b! "
        "propagationPolicy=4:s! dryRun=5:[]s "
        "ignoreStoreReadErrorWithClusterBreakingPotential=6:b!"
    ),
    "ObjectMeta": (
        "name=1:s generateName=2:s namespace=3:s selfLink=4:s uid=5:s resourceVersion=6:s "
        "generation=7:i creationTimestamp=8:Time deletionTimestamp=9:Time "
        "deletionGracePeriodSeconds=10:i! labels=11:{}s annotations=12:{}s "
        "ownerReferences=13:[]OwnerReference finalizers=14:[]s "
        "managedFields=17:[]ManagedFieldsEntry"
    ),
    "NamespaceSpec": "finalizers=1:[]s",
    "NamespaceStatus": "phase=1:s conditions=2:[]NamespaceCondition",
    "PodSpec": (
        "volumes=1:[]Volume containers=2:[]Container restartPolicy=3:s "
        "terminationGracePeriodSeconds=4:i! activeDeadlineSeconds=5:i! dnsPolicy=6:s "
        "nodeSelector=7:{}s serviceAccountName=8:s serviceAccount=9:s nodeName=10:s "
        "hostNetwork=11:b hostPID=12:b hostIPC=13:b securityContext=14:PodSecurityContext "
        "imagePullSecrets=15:[]LocalObjectReference hostname=16:s subdomain=17:s "
        "affinity=18:Affinity schedulerName=19:s initContainers=20:[]Container "
        "automountServiceAccountToken=21:b! tolerations=22:[]Toleration "
        "hostAliases=23:[]HostAlias priorityClassName=24:s priority=25:i! "
        "dnsConfig=26:PodDNSConfig shareProcessNamespace=27:b! "
        "readinessGates=28:[]PodReadinessGate runtimeClassName=29:s! enableServiceLinks=30:b! "
        "preemptionPolicy=31:s! overhead=32:{}Quantity "
        "topologySpreadConstraints=33:[]TopologySpreadConstraint "
        "ephemeralContainers=34:[]EphemeralContainer setHostnameAsFQDN=35:b! os=36:PodOS "
        "hostUsers=37:b! schedulingGates=38:[]PodSchedulingGate "
        "resourceClaims=39:[]PodResourceClaim resources=40:ResourceRequirements "
        "hostnameOverride=41:s! schedulingGroup=43:PodSchedulingGroup "
        "evictionResponders=44:[]EvictionResponder"
    ),
    "PodStatus": (
        "phase=1:s conditions=2:[]PodCondition message=3:s reason=4:s hostIP=5:s podIP=6:s "
        "startTime=7:Time containerStatuses=8:[]ContainerStatus qosClass=9:s "
        "initContainerStatuses=10:[]ContainerStatus nominatedNodeName=11:s podIPs=12:[]PodIP "
        "ephemeralContainerStatuses=13:[]ContainerStatus resize=14:s "
        "resourceClaimStatuses=15:[]PodResourceClaimStatus hostIPs=16:[]HostIP "
        "observedGeneration=17:i extendedResourceClaimStatus=18:PodExtendedResourceClaimStatus "
        "allocatedResources=19:{}Quantity resources=20:ResourceRequirements "
        "nodeAllocatableResourceClaimStatuses=21:[]NodeAllocatableResourceClaimStatus "
        "volumeHealth=22:[]PodVolumeHealth"
    ),
    "ServiceSpec": (
        "ports=1:[]ServicePort selector=2:{}s clusterIP=3:s type=4:s externalIPs=5:[]s "
        "sessionAffinity=7:s loadBalancerIP=8:s loadBalancerSourceRanges=9:[]s "
        "externalName=10:s externalTrafficPolicy=11:s healthCheckNodePort=12:i "
        "publishNotReadyAddresses=13:b sessionAffinityConfig=14:SessionAffinityConfig "
        "ipFamilyPolicy=17:s! clusterIPs=18:[]s ipFamilies=19:[]s "
        "allocateLoadBalancerNodePorts=20:b! loadBalancerClass=21:s! "
        "internalTrafficPolicy=22:s! trafficDistribution=23:s!"
    ),
    "ServiceStatus": "loadBalancer=1:LoadBalancerStatus conditions=2:[]Condition",
    "EndpointSubset": (
        "addresses=1:[]EndpointAddress notReadyAddresses=2:[]EndpointAddress ports=3:[]EndpointPort"
    ),
    "NodeSpec": (
        "podCIDR=1:s externalID=2:s providerID=3:s unschedulable=4:b taints=5:[]Taint "
        "configSource=6:NodeConfigSource podCIDRs=7:[]s "
        "podPreemptionPolicy=8:NodePodPreemptionPolicy"
    ),
    "NodeStatus": (
        "capacity=1:{}Quantity allocatable=2:{}Quantity phase=3:s conditions=4:[]NodeCondition "
        "addresses=5:[]NodeAddress daemonEndpoints=6:NodeDaemonEndpoints "
        "nodeInfo=7:NodeSystemInfo images=8:[]ContainerImage volumesInUse=9:[]s "
        "volumesAttached=10:[]AttachedVolume config=11:NodeConfigStatus "
        "runtimeHandlers=12:[]NodeRuntimeHandler features=13:NodeFeatures "
        "declaredFeatures=14:[]s"
    ),
    "ObjectReference": (
        "kind=1:s namespace=2:s name=3:s uid=4:s apiVersion=5:s resourceVersion=6:s fieldPath=7:s"
    ),
    "EventSource": "component=1:s host=2:s",
    "EventSeries": "count=1:i lastObservedTime=2:MicroTime",
    "LocalObjectReference": "name=1:s",
    "DeploymentSpec": (
        "replicas=1:i! selector=2:LabelSelector template=3:PodTemplateSpec "
        "strategy=4:DeploymentStrategy minReadySeconds=5:i revisionHistoryLimit=6:i! paused=7:b "
        "progressDeadlineSeconds=9:i!"
    ),
    "DeploymentStatus": (
        "observedGeneration=1:i replicas=2:i updatedReplicas=3:i availableReplicas=4:i "
        "unavailableReplicas=5:i conditions=6:[]DeploymentCondition readyReplicas=7:i "
        "collisionCount=8:i! terminatingReplicas=9:i!"
    ),
    "ReplicaSetSpec": (
        "replicas=1:i! selector=2:LabelSelector template=3:PodTemplateSpec minReadySeconds=4:i"
    ),
    "ReplicaSetStatus": (
        "replicas=1:i! fullyLabeledReplicas=2:i observedGeneration=3:i readyReplicas=4:i "
        "availableReplicas=5:i conditions=6:[]ReplicaSetCondition terminatingReplicas=7:i!"
    ),
    "StatefulSetSpec": (
        "replicas=1:i! selector=2:LabelSelector template=3:PodTemplateSpec "
        "volumeClaimTemplates=4:[]PersistentVolumeClaim serviceName=5:s! "
        "podManagementPolicy=6:s updateStrategy=7:StatefulSetUpdateStrategy "
        "revisionHistoryLimit=8:i! minReadySeconds=9:i "
        "persistentVolumeClaimRetentionPolicy=10:StatefulSetPersistentVolumeClaimRetentionPolicy "
        "ordinals=11:StatefulSetOrdinals"
    ),
    "StatefulSetStatus": (
        "observedGeneration=1:i replicas=2:i! readyReplicas=3:i currentReplicas=4:i "
        "updatedReplicas=5:i currentRevision=6:s updateRevision=7:s collisionCount=9:i! "
        "conditions=10:[]StatefulSetCondition availableReplicas=11:i!"
    ),
    "Endpoint": (
        "addresses=1:[]s conditions=2:EndpointConditions hostname=3:s! "
        "targetRef=4:ObjectReference deprecatedTopology=5:{}s nodeName=6:s! zone=7:s! "
        "hints=8:EndpointHints"
    ),
    "discovery.EndpointPort": "name=1:s! protocol=2:s! port=3:i! appProtocol=4:s!",
    "LeaseSpec": (
        "holderIdentity=1:s! leaseDurationSeconds=2:i! acquireTime=3:MicroTime "
        "renewTime=4:MicroTime leaseTransitions=5:i! strategy=6:s! preferredHolder=7:s!"
    ),
    "ScaleSpec": "replicas=1:i",
    "ScaleStatus": "replicas=1:i! selector=2:s",
    "Preconditions": "uid=1:s! resourceVersion=2:s!",
    "OwnerReference": (
        "kind=1:s! name=3:s! uid=4:s! apiVersion=5:s! controller=6:b! blockOwnerDeletion=7:b!"
    ),
    "ManagedFieldsEntry": (
        "manager=1:s operation=2:s apiVersion=3:s time=4:Time fieldsType=6:s "
        "fieldsV1=7:FieldsV1 subresource=8:s"
    ),
    "NamespaceCondition": "type=1:s! status=2:s! lastTransitionTime=4:Time reason=5:s message=6:s",
    "Volume": "name=1:s! =2:VolumeSource",
    "Container": (
        "name=1:s! image=2:s command=3:[]s args=4:[]s workingDir=5:s ports=6:[]ContainerPort "
        "env=7:[]EnvVar resources=8:ResourceRequirements volumeMounts=9:[]VolumeMount "
        "livenessProbe=10:Probe readinessProbe=11:Probe lifecycle=12:Lifecycle "
        "terminationMessagePath=13:s imagePullPolicy=14:s securityContext=15:SecurityContext "
        "stdin=16:b stdinOnce=17:b tty=18:b envFrom=19:[]EnvFromSource "
        "terminationMessagePolicy=20:s volumeDevices=21:[]VolumeDevice startupProbe=22:Probe "
        "resizePolicy=23:[]ContainerResizePolicy restartPolicy=24:s! "
        "restartPolicyRules=25:[]ContainerRestartRule"
    ),
    "EphemeralContainer": "=1:EphemeralContainerCommon targetContainerName=2:s",
    "PodSecurityContext": (
        "seLinuxOptions=1:SELinuxOptions runAsUser=2:i! runAsNonRoot=3:b! "
        "supplementalGroups=4:[]i fsGroup=5:i! runAsGroup=6:i! sysctls=7:[]Sysctl "
        "windowsOptions=8:WindowsSecurityContextOptions fsGroupChangePolicy=9:s! "
        "seccompProfile=10:SeccompProfile appArmorProfile=11:AppArmorProfile "
        "supplementalGroupsPolicy=12:s! seLinuxChangePolicy=13:s!"
    ),
    "Affinity": (
        "nodeAffinity=1:NodeAffinity podAffinity=2:PodAffinity podAntiAffinity=3:PodAntiAffinity"
    ),
    "Toleration": "key=1:s operator=2:s value=3:s effect=4:s tolerationSeconds=5:i!",
    "HostAlias": "ip=1:s! hostnames=2:[]s",
    "PodDNSConfig": "nameservers=1:[]s searches=2:[]s options=3:[]PodDNSConfigOption",
    "PodReadinessGate": "conditionType=1:s!",
    "TopologySpreadConstraint": (
        "maxSkew=1:i! topologyKey=2:s! whenUnsatisfiable=3:s! labelSelector=4:LabelSelector "
        "minDomains=5:i! nodeAffinityPolicy=6:s! nodeTaintsPolicy=7:s! matchLabelKeys=8:[]s"
    ),
    "PodOS": "name=1:s!",
    "PodSchedulingGate": "name=1:s!",
    "PodResourceClaim": "name=1:s! resourceClaimName=3:s! resourceClaimTemplateName=4:s!",
    "ResourceRequirements": "limits=1:{}Quantity requests=2:{}Quantity claims=3:[]ResourceClaim",
    "PodSchedulingGroup": "podGroupName=1:s!",
    "EvictionResponder": "name=1:s! priority=2:i!",
    "PodCondition": (
        "type=1:s! status=2:s! lastProbeTime=3:Time lastTransitionTime=4:Time reason=5:s "
        "message=6:s observedGeneration=7:i"
    ),
    "HostIP": "ip=1:s!",
    "PodIP": "ip=1:s!",
    "ContainerStatus": (
        "name=1:s! state=2:ContainerState lastState=3:ContainerState ready=4:b! "
        "restartCount=5:i! image=6:s! imageID=7:s! containerID=8:s started=9:b! "
        "allocatedResources=10:{}Quantity resources=11:ResourceRequirements "
        "volumeMounts=12:[]VolumeMountStatus user=13:ContainerUser "
        "allocatedResourcesStatus=14:[]ResourceStatus stopSignal=15:s!"
    ),
    "PodResourceClaimStatus": "name=1:s! resourceClaimName=2:s!",
    "PodExtendedResourceClaimStatus": (
        "requestMappings=1:[]ContainerExtendedResourceRequest resourceClaimName=2:s!"
    ),
    "NodeAllocatableResourceClaimStatus": (
        "resourceClaimName=1:s! containers=2:[]s mapping=4:[]NodeAllocatableMappedResources "
        "overhead=5:[]NodeAllocatableOverheadResources"
    ),
    "PodVolumeHealth": (
        "name=1:s! healthConditions=2:[]VolumeHealthCondition lastTransitionTime=3:Time"
    ),
    "ServicePort": (
        "name=1:s protocol=2:s port=3:i! targetPort=4:IntOrString nodePort=5:i appProtocol=6:s!"
    ),
    "SessionAffinityConfig": "clientIP=1:ClientIPConfig",
    "LoadBalancerStatus": "ingress=1:[]LoadBalancerIngress",
    "Condition": (
        "type=1:s! status=2:s! observedGeneration=3:i lastTransitionTime=4:Time reason=5:s! "
        "message=6:s!"
    ),
    "EndpointAddress": "ip=1:s! targetRef=2:ObjectReference hostname=3:s nodeName=4:s!",
    "EndpointPort": "name=1:s port=2:i! protocol=3:s appProtocol=4:s!",
    "Taint": "key=1:s! value=2:s effect=3:s! timeAdded=4:Time",
    "NodeConfigSource": "configMap=2:ConfigMapNodeConfigSource",
    "NodePodPreemptionPolicy": "disableResizePreemption=1:[]s",
    "NodeCondition": (
        "type=1:s! status=2:s! lastHeartbeatTime=3:Time lastTransitionTime=4:Time reason=5:s "
        "message=6:s"
    ),
    "NodeAddress": "type=1:s! address=2:s!",
    "NodeDaemonEndpoints": "kubeletEndpoint=1:DaemonEndpoint",
    "NodeSystemInfo": (
        "machineID=1:s! systemUUID=2:s! bootID=3:s! kernelVersion=4:s! osImage=5:s! "
        "containerRuntimeVersion=6:s! kubeletVersion=7:s! kubeProxyVersion=8:s! "
        "operatingSystem=9:s! architecture=10:s! swap=11:NodeSwapStatus"
    ),
    "ContainerImage": "names=1:[]s sizeBytes=2:i",
    "AttachedVolume": "name=1:s! devicePath=2:s!",
    "NodeConfigStatus": (
        "assigned=1:NodeConfigSource active=2:NodeConfigSource lastKnownGood=3:NodeConfigSource "
        "error=4:s"
    ),
    "NodeRuntimeHandler": "name=1:s! features=2:NodeRuntimeHandlerFeatures",
    "NodeFeatures": "supplementalGroupsPolicy=1:b!",
    "LabelSelector": "matchLabels=1:{}s matchExpressions=2:[]LabelSelectorRequirement",
    "PodTemplateSpec": "metadata=1:ObjectMeta spec=2:PodSpec",
    "DeploymentStrategy": "type=1:s rollingUpdate=2:RollingUpdateDeployment",
    "DeploymentCondition": (
        "type=1:s! status=2:s! reason=4:s message=5:s lastUpdateTime=6:Time "
        "lastTransitionTime=7:Time"
    ),
    "ReplicaSetCondition": "type=1:s! status=2:s! lastTransitionTime=3:Time reason=4:s message=5:s",
    "PersistentVolumeClaim": (
        "metadata=1:ObjectMeta spec=2:PersistentVolumeClaimSpec "
        "status=3:PersistentVolumeClaimStatus"
    ),
    "StatefulSetUpdateStrategy": "type=1:s rollingUpdate=2:RollingUpdateStatefulSetStrategy",
    "StatefulSetPersistentVolumeClaimRetentionPolicy": "whenDeleted=1:s whenScaled=2:s",
    "StatefulSetOrdinals": "start=1:i!",
    "StatefulSetCondition": (
        "type=1:s! status=2:s! lastTransitionTime=3:Time reason=4:s message=5:s"
    ),
    "EndpointConditions": "ready=1:b! serving=2:b! terminating=3:b!",
    "EndpointHints": "forZones=1:[]ForZone forNodes=2:[]ForNode",
    "VolumeSource": (
        "hostPath=1:HostPathVolumeSource emptyDir=2:EmptyDirVolumeSource "
        "gcePersistentDisk=3:GCEPersistentDiskVolumeSource "
        "awsElasticBlockStore=4:AWSElasticBlockStoreVolumeSource gitRepo=5:GitRepoVolumeSource "
        "secret=6:SecretVolumeSource nfs=7:NFSVolumeSource iscsi=8:ISCSIVolumeSource "
        "glusterfs=9:GlusterfsVolumeSource "
        "persistentVolumeClaim=10:PersistentVolumeClaimVolumeSource rbd=11:RBDVolumeSource "
        "flexVolume=12:FlexVolumeSource cinder=13:CinderVolumeSource "
        "cephfs=14:CephFSVolumeSource flocker=15:FlockerVolumeSource "
        "downwardAPI=16:DownwardAPIVolumeSource fc=17:FCVolumeSource "
        "azureFile=18:AzureFileVolumeSource configMap=19:ConfigMapVolumeSource "
        "vsphereVolume=20:VsphereVirtualDiskVolumeSource quobyte=21:QuobyteVolumeSource "
        "azureDisk=22:AzureDiskVolumeSource "
        "photonPersistentDisk=23:PhotonPersistentDiskVolumeSource "
        "portworxVolume=24:PortworxVolumeSource scaleIO=25:ScaleIOVolumeSource "
        "projected=26:ProjectedVolumeSource storageos=27:StorageOSVolumeSource "
        "csi=28:CSIVolumeSource ephemeral=29:EphemeralVolumeSource image=30:ImageVolumeSource"
    ),
    "ContainerPort": "name=1:s hostPort=2:i containerPort=3:i! protocol=4:s hostIP=5:s",
    "EnvFromSource": "prefix=1:s configMapRef=2:ConfigMapEnvSource secretRef=3:SecretEnvSource",
    "EnvVar": "name=1:s! value=2:s valueFrom=3:EnvVarSource",
    "ContainerResizePolicy": "resourceName=1:s! restartPolicy=2:s!",
    "ContainerRestartRule": "action=1:s exitCodes=2:ContainerRestartRuleOnExitCodes",
    "VolumeMount": (
        "name=1:s! readOnly=2:b mountPath=3:s! subPath=4:s mountPropagation=5:s! "
        "subPathExpr=6:s recursiveReadOnly=7:s! bindMountOptions=8:[]s"
    ),
    "VolumeDevice": "name=1:s! devicePath=2:s!",
    "Probe": (
        "=1:ProbeHandler initialDelaySeconds=2:i timeoutSeconds=3:i periodSeconds=4:i "
        "successThreshold=5:i failureThreshold=6:i terminationGracePeriodSeconds=7:i!"
    ),
    "Lifecycle": "postStart=1:LifecycleHandler preStop=2:LifecycleHandler stopSignal=3:s!",
    "SecurityContext": (
        "capabilities=1:Capabilities privileged=2:b! seLinuxOptions=3:SELinuxOptions "
        "runAsUser=4:i! runAsNonRoot=5:b! readOnlyRootFilesystem=6:b! "
        "allowPrivilegeEscalation=7:b! runAsGroup=8:i! procMount=9:s! "
        "windowsOptions=10:WindowsSecurityContextOptions seccompProfile=11:SeccompProfile "
        "appArmorProfile=12:AppArmorProfile"
    ),
    "EphemeralContainerCommon": (
        "name=1:s! image=2:s command=3:[]s args=4:[]s workingDir=5:s ports=6:[]ContainerPort "
        "env=7:[]EnvVar resources=8:ResourceRequirements volumeMounts=9:[]VolumeMount "
        "livenessProbe=10:Probe readinessProbe=11:Probe lifecycle=12:Lifecycle "
        "terminationMessagePath=13:s imagePullPolicy=14:s securityContext=15:SecurityContext "
        "stdin=16:b stdinOnce=17:b tty=18:b envFrom=19:[]EnvFromSource "
        "terminationMessagePolicy=20:s volumeDevices=21:[]VolumeDevice startupProbe=22:Probe "
        "resizePolicy=23:[]ContainerResizePolicy restartPolicy=24:s! "
        "restartPolicyRules=25:[]ContainerRestartRule"
    ),
    "SELinuxOptions": "user=1:s role=2:s type=3:s level=4:s",
    "WindowsSecurityContextOptions": (
        "gmsaCredentialSpecName=1:s! gmsaCredentialSpec=2:s! runAsUserName=3:s! hostProcess=4:b!"
    ),
    "Sysctl": "name=1:s! value=2:s!",
    "SeccompProfile": "type=1:s! localhostProfile=2:s!",
    "AppArmorProfile": "type=1:s! localhostProfile=2:s!",
    "NodeAffinity": (
        "requiredDuringSchedulingIgnoredDuringExecution=1:NodeSelector "
        "preferredDuringSchedulingIgnoredDuringExecution=2:[]PreferredSchedulingTerm"
    ),
    "PodAffinity": (
        "requiredDuringSchedulingIgnoredDuringExecution=1:[]PodAffinityTerm "
        "preferredDuringSchedulingIgnoredDuringExecution=2:[]WeightedPodAffinityTerm"
    ),
    "PodAntiAffinity": (
        "requiredDuringSchedulingIgnoredDuringExecution=1:[]PodAffinityTerm "
        "preferredDuringSchedulingIgnoredDuringExecution=2:[]WeightedPodAffinityTerm"
    ),
    "PodDNSConfigOption": "name=1:s value=2:s!",
    "ResourceClaim": "name=1:s! request=2:s",
    "ContainerState": (
        "waiting=1:ContainerStateWaiting running=2:ContainerStateRunning "
        "terminated=3:ContainerStateTerminated"
    ),
    "VolumeMountStatus": (
        "name=1:s! mountPath=2:s! readOnly=3:b recursiveReadOnly=4:s! volumeStatus=5:VolumeStatus"
    ),
    "ContainerUser": "linux=1:LinuxContainerUser",
    "ResourceStatus": "name=1:s! resources=2:[]ResourceHealth",
    "ContainerExtendedResourceRequest": "containerName=1:s! resourceName=2:s! requestName=3:s!",
    "NodeAllocatableMappedResources": "name=1:s! quantity=2:Quantity",
    "NodeAllocatableOverheadResources": "name=1:s! perPod=2:Quantity perContainer=3:Quantity",
    "VolumeHealthCondition": "status=1:s! reason=2:s! message=3:s",
    "ClientIPConfig": "timeoutSeconds=1:i!",
    "LoadBalancerIngress": "ip=1:s hostname=2:s ipMode=3:s! ports=4:[]PortStatus",
    "ConfigMapNodeConfigSource": (
        "namespace=1:s! name=2:s! uid=3:s resourceVersion=4:s kubeletConfigKey=5:s!"
    ),
    "DaemonEndpoint": "Port=1:i!",
    "NodeSwapStatus": "capacity=1:i!",
    "NodeRuntimeHandlerFeatures": "recursiveReadOnlyMounts=1:b! userNamespaces=2:b!",
    "LabelSelectorRequirement": "key=1:s! operator=2:s! values=3:[]s",
    "RollingUpdateDeployment": "maxUnavailable=1:IntOrString maxSurge=2:IntOrString",
    "PersistentVolumeClaimSpec": (
        "accessModes=1:[]s resources=2:VolumeResourceRequirements volumeName=3:s "
        "selector=4:LabelSelector storageClassName=5:s! volumeMode=6:s! "
        "dataSource=7:TypedLocalObjectReference dataSourceRef=8:TypedObjectReference "
        "volumeAttributesClassName=9:s!"
    ),
    "PersistentVolumeClaimStatus": (
        "phase=1:s accessModes=2:[]s capacity=3:{}Quantity "
        "conditions=4:[]PersistentVolumeClaimCondition allocatedResources=5:{}Quantity "
        "allocatedResourceStatuses=7:{}s currentVolumeAttributesClassName=8:s! "
        "modifyVolumeStatus=9:ModifyVolumeStatus healthStatus=10:VolumeHealthStatus"
    ),
    "RollingUpdateStatefulSetStrategy": "partition=1:i! maxUnavailable=2:IntOrString",
    "ForZone": "name=1:s!",
    "ForNode": "name=1:s!",
    "HostPathVolumeSource": "path=1:s! type=2:s!",
    "EmptyDirVolumeSource": "medium=1:s sizeLimit=2:Quantity mode=3:i!",
    "GCEPersistentDiskVolumeSource": "pdName=1:s! fsType=2:s partition=3:i readOnly=4:b",
    "AWSElasticBlockStoreVolumeSource": "volumeID=1:s! fsType=2:s partition=3:i readOnly=4:b",
    "GitRepoVolumeSource": "repository=1:s! revision=2:s directory=3:s",
    "SecretVolumeSource": (
        "secretName=1:s items=2:[]KeyToPath defaultMode=3:i! optional=4:b! defaultUser=5:i!"
    ),
    "NFSVolumeSource": "server=1:s! path=2:s! readOnly=3:b",
    "ISCSIVolumeSource": (
        "targetPortal=1:s! iqn=2:s! lun=3:i! iscsiInterface=4:s fsType=5:s readOnly=6:b "
        "portals=7:[]s chapAuthDiscovery=8:b secretRef=10:LocalObjectReference "
        "chapAuthSession=11:b initiatorName=12:s!"
    ),
    "GlusterfsVolumeSource": "endpoints=1:s! path=2:s! readOnly=3:b",
    "PersistentVolumeClaimVolumeSource": "claimName=1:s! readOnly=2:b",
    "RBDVolumeSource": (
        "monitors=1:[]s image=2:s! fsType=3:s pool=4:s user=5:s keyring=6:s "
        "secretRef=7:LocalObjectReference readOnly=8:b"
    ),
    "FlexVolumeSource": (
        "driver=1:s! fsType=2:s secretRef=3:LocalObjectReference readOnly=4:b options=5:{}s"
    ),
    "CinderVolumeSource": "volumeID=1:s! fsType=2:s readOnly=3:b secretRef=4:LocalObjectReference",
    "CephFSVolumeSource": (
        "monitors=1:[]s path=2:s user=3:s secretFile=4:s secretRef=5:LocalObjectReference "
        "readOnly=6:b"
    ),
    "FlockerVolumeSource": "datasetName=1:s datasetUUID=2:s",
    "DownwardAPIVolumeSource": "items=1:[]DownwardAPIVolumeFile defaultMode=2:i! defaultUser=3:i!",
    "FCVolumeSource": "targetWWNs=1:[]s lun=2:i! fsType=3:s readOnly=4:b wwids=5:[]s",
    "AzureFileVolumeSource": "secretName=1:s! shareName=2:s! readOnly=3:b",
    "ConfigMapVolumeSource": (
        "=1:LocalObjectReference items=2:[]KeyToPath defaultMode=3:i! optional=4:b! "
        "defaultUser=5:i!"
    ),
    "VsphereVirtualDiskVolumeSource": (
        "volumePath=1:s! fsType=2:s storagePolicyName=3:s storagePolicyID=4:s"
    ),
    "QuobyteVolumeSource": "registry=1:s! volume=2:s! readOnly=3:b user=4:s group=5:s tenant=6:s",
    "AzureDiskVolumeSource": (
        "diskName=1:s! diskURI=2:s! cachingMode=3:s! fsType=4:s! readOnly=5:b! kind=6:s!"
    ),
    "PhotonPersistentDiskVolumeSource": "pdID=1:s! fsType=2:s",
    "ProjectedVolumeSource": "sources=1:[]VolumeProjection defaultMode=2:i! defaultUser=3:i!",
    "PortworxVolumeSource": "volumeID=1:s! fsType=2:s readOnly=3:b",
    "ScaleIOVolumeSource": (
        "gateway=1:s! system=2:s! secretRef=3:LocalObjectReference sslEnabled=4:b "
        "protectionDomain=5:s storagePool=6:s storageMode=7:s volumeName=8:s fsType=9:s "
        "readOnly=10:b"
    ),
    "StorageOSVolumeSource": (
        "volumeName=1:s volumeNamespace=2:s fsType=3:s readOnly=4:b "
        "secretRef=5:LocalObjectReference"
    ),
    "CSIVolumeSource": (
        "driver=1:s! readOnly=2:b! fsType=3:s! volumeAttributes=4:{}s "
        "nodePublishSecretRef=5:LocalObjectReference"
    ),
    "EphemeralVolumeSource": "volumeClaimTemplate=1:PersistentVolumeClaimTemplate",
    "ImageVolumeSource": "reference=1:s pullPolicy=2:s",
    "ConfigMapEnvSource": "=1:LocalObjectReference optional=2:b!",
    "SecretEnvSource": "=1:LocalObjectReference optional=2:b!",
    "EnvVarSource": (
        "fieldRef=1:ObjectFieldSelector resourceFieldRef=2:ResourceFieldSelector "
        "configMapKeyRef=3:ConfigMapKeySelector secretKeyRef=4:SecretKeySelector "
        "fileKeyRef=5:FileKeySelector"
    ),
    "ContainerRestartRuleOnExitCodes": "operator=1:s values=2:[]i",
    "ProbeHandler": (
        "exec=1:ExecAction httpGet=2:HTTPGetAction tcpSocket=3:TCPSocketAction grpc=4:GRPCAction"
    ),
    "LifecycleHandler": (
        "exec=1:ExecAction httpGet=2:HTTPGetAction tcpSocket=3:TCPSocketAction sleep=4:SleepAction"
    ),
    "Capabilities": "add=1:[]s drop=2:[]s",
    "NodeSelector": "nodeSelectorTerms=1:[]NodeSelectorTerm",
    "PreferredSchedulingTerm": "weight=1:i! preference=2:NodeSelectorTerm",
    "PodAffinityTerm": (
        "labelSelector=1:LabelSelector namespaces=2:[]s topologyKey=3:s! "
        "namespaceSelector=4:LabelSelector matchLabelKeys=5:[]s mismatchLabelKeys=6:[]s"
    ),
    "WeightedPodAffinityTerm": "weight=1:i! podAffinityTerm=2:PodAffinityTerm",
    "ContainerStateWaiting": "reason=1:s message=2:s",
    "ContainerStateRunning": "startedAt=1:Time",
    "ContainerStateTerminated": (
        "exitCode=1:i! signal=2:i reason=3:s message=4:s startedAt=5:Time finishedAt=6:Time "
        "containerID=7:s"
    ),
    "VolumeStatus": "image=1:ImageVolumeStatus",
    "LinuxContainerUser": "uid=1:i! gid=2:i! supplementalGroups=3:[]i",
    "ResourceHealth": "resourceID=1:s! health=2:s message=6:s!",
    "PortStatus": "port=1:i! protocol=2:s! error=3:s!",
    "VolumeResourceRequirements": "limits=1:{}Quantity requests=2:{}Quantity",
    "TypedLocalObjectReference": "apiGroup=1:s! kind=2:s! name=3:s!",
    "TypedObjectReference": "apiGroup=1:s! kind=2:s! name=3:s! namespace=4:s!",
    "PersistentVolumeClaimCondition": (
        "type=1:s! status=2:s! lastProbeTime=3:Time lastTransitionTime=4:Time reason=5:s "
        "message=6:s"
    ),
    "ModifyVolumeStatus": "targetVolumeAttributesClassName=1:s status=2:s!",
    "VolumeHealthStatus": "healthConditions=1:[]VolumeHealthCondition lastTransitionTime=2:Time",
    "KeyToPath": "key=1:s! path=2:s! mode=3:i! user=4:i!",
    "DownwardAPIVolumeFile": (
        "path=1:s! fieldRef=2:ObjectFieldSelector resourceFieldRef=3:ResourceFieldSelector "
        "mode=4:i! user=5:i!"
    ),
    "VolumeProjection": (
        "secret=1:SecretProjection downwardAPI=2:DownwardAPIProjection "
        "configMap=3:ConfigMapProjection serviceAccountToken=4:ServiceAccountTokenProjection "
        "clusterTrustBundle=5:ClusterTrustBundleProjection "
        "podCertificate=6:PodCertificateProjection"
    ),
    "PersistentVolumeClaimTemplate": "metadata=1:ObjectMeta spec=2:PersistentVolumeClaimSpec",
    "ObjectFieldSelector": "apiVersion=1:s fieldPath=2:s!",
    "ResourceFieldSelector": "containerName=1:s resource=2:s! divisor=3:Quantity",
    "ConfigMapKeySelector": "=1:LocalObjectReference key=2:s! optional=3:b!",
    "SecretKeySelector": "=1:LocalObjectReference key=2:s! optional=3:b!",
    "FileKeySelector": "volumeName=1:s! path=2:s! key=3:s! optional=4:b!",
    "ExecAction": "command=1:[]s",
    "HTTPGetAction": (
        "path=1:s port=2:IntOrString host=3:s scheme=4:s httpHeaders=5:[]HTTPHeader protocol=6:s!"
    ),
    "TCPSocketAction": "port=1:IntOrString host=2:s",
    "GRPCAction": "port=1:i! service=2:s! mode=3:s!",
    "SleepAction": "seconds=1:i!",
    "NodeSelectorTerm": (
        "matchExpressions=1:[]NodeSelectorRequirement matchFields=2:[]NodeSelectorRequirement"
    ),
    "ImageVolumeStatus": "imageRef=1:s",
    "SecretProjection": "=1:LocalObjectReference items=2:[]KeyToPath optional=4:b!",
    "DownwardAPIProjection": "items=1:[]DownwardAPIVolumeFile",
    "ConfigMapProjection": "=1:LocalObjectReference items=2:[]KeyToPath optional=4:b!",
    "ServiceAccountTokenProjection": "audience=1:s expirationSeconds=2:i! path=3:s! user=4:i!",
    "ClusterTrustBundleProjection": (
        "name=1:s! signerName=2:s! labelSelector=3:LabelSelector path=4:s! optional=5:b! user=6:i!"
    ),
    "PodCertificateProjection": (
        "signerName=1:s keyType=2:s maxExpirationSeconds=3:i! credentialBundlePath=4:s "
        "keyPath=5:s certificateChainPath=6:s userAnnotations=7:{}s user=8:i!"
    ),
    "HTTPHeader": "name=1:s! value=2:s!",
    "NodeSelectorRequirement": "key=1:s! operator=2:s! values=3:[]s",
}
